import { and, eq } from 'drizzle-orm';
import { channelCompletionCodes, conversationDeclines, conversations } from '../db/schema.js';
import { AppError } from '../errors.js';
import { addToOutbox, type OutboxItem } from '../queue/outbox.js';
import type { ServiceContext } from '../services.js';
import { createBestAgentQueries } from './best-agent.js';
import { agentEvent, closeHeld, markNotResponding, recordDecline, recordHistory, returnToFront, timeOutOffer, type Tx } from './transitions.js';

/**
 * Automatic distribution (DESIGN.md §2). Every decision runs in one IMMEDIATE transaction, so it
 * reads and writes with the database's write lock held: two workers, or two processes on one
 * database file, serialize here and can never give an agent more than the rules allow. Each
 * assignment is a compare-and-set on the conversation (state = queued), and eligibility (load,
 * per-channel count) is re-read inside the same transaction.
 */

export interface Actor {
  /** The acting agent, or null for the admin acting on the agent's behalf. */
  agentId: string | null;
}

export interface DispatchResult {
  assigned: number;
  /** True when the batch limit stopped the run: more may fit, run again. */
  more: boolean;
}

type ConversationRow = typeof conversations.$inferSelect;

const DISPATCH_BATCH = 100;

/** A place in a channel's queue order: queue_rank, enqueued_at, rowid of the last row looked at. */
type QueueCursor = [rank: number, enqueuedAt: number | null, rowid: number];

/** A conversation's running timer: its id and the offer sequence the timer was set for. */
export interface Timer {
  id: string;
  seq: number;
}

export function createAcdService(ctx: ServiceContext) {
  const { db, clock } = ctx;
  const sqlite = db.$client;

  // Prepared statements for the dispatch loop (the hot path); documented inline.
  const { bestAgent } = createBestAgentQueries(sqlite);
  const q = {
    channel: sqlite.prepare(
      `SELECT id, utilization, auto_assign_limit, auto_answer, notification_timeout_sec
       FROM channels WHERE id = ? AND deleted_at IS NULL`,
    ),
    channelAgentCount: sqlite.prepare('SELECT count(*) FROM channel_agents WHERE channel_id = ?').pluck(),
    queued: sqlite.prepare(
      `SELECT id, offer_seq, queue_rank, enqueued_at, rowid FROM conversations WHERE channel_id = ? AND state = 'queued'
       ORDER BY queue_rank, enqueued_at, rowid LIMIT ?`,
    ),
    // The next page, after the last conversation a transaction looked at (queue order).
    queuedAfter: sqlite.prepare(
      `SELECT id, offer_seq, queue_rank, enqueued_at, rowid FROM conversations WHERE channel_id = ? AND state = 'queued'
         AND (queue_rank, enqueued_at, rowid) > (?, ?, ?)
       ORDER BY queue_rank, enqueued_at, rowid LIMIT ?`,
    ),
    declinedByChannelAgents: sqlite
      .prepare(
        // CROSS JOIN: walk this conversation's declines (usually none), not the channel's agents.
        `SELECT count(*) FROM conversation_declines d CROSS JOIN channel_agents ca ON ca.channel_id = @ch AND ca.agent_id = d.agent_id
         WHERE d.conversation_id = @conv`,
      )
      .pluck(),
    assign: sqlite.prepare(
      `UPDATE conversations SET state = ?, agent_id = ?, utilization = ?, offer_seq = offer_seq + 1,
         offer_expires_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'`,
    ),
    chargeAgent: sqlite.prepare('UPDATE agents SET load = load + ?, last_assigned_at = ?, updated_at = ? WHERE id = ?'),
    /** The per-channel hold counter (see agentChannelHolds); changeHold in transitions.ts is its other writer. */
    countHold: sqlite.prepare(
      `INSERT INTO agent_channel_holds (channel_id, agent_id, held) VALUES (?, ?, 1)
       ON CONFLICT (channel_id, agent_id) DO UPDATE SET held = held + 1`,
    ),
    history: sqlite.prepare(
      'INSERT INTO conversation_history (conversation_id, from_state, to_state, agent_id, reason, at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    outbox: sqlite.prepare('INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)'),
    // The sweeper's (sweeper.ts): each through its partial index, oldest deadline first.
    offersDue: sqlite.prepare(
      "SELECT id, offer_seq AS seq FROM conversations WHERE state = 'offered' AND offer_expires_at <= ? ORDER BY offer_expires_at LIMIT ?",
    ),
    wrapupsDue: sqlite.prepare(
      "SELECT id, offer_seq AS seq FROM conversations WHERE state = 'wrapup' AND wrapup_expires_at <= ? ORDER BY wrapup_expires_at LIMIT ?",
    ),
    channelsWithQueue: sqlite
      .prepare(
        "SELECT id FROM channels c WHERE deleted_at IS NULL AND EXISTS (SELECT 1 FROM conversations WHERE channel_id = c.id AND state = 'queued')",
      )
      .pluck(),
  };

  /**
   * One transaction of dispatch: up to DISPATCH_BATCH queued conversations from `after` (null: the
   * head of the queue). `next` is where the following transaction goes on, or null when done.
   */
  function dispatchOnce(channelId: string, now: number, after: QueueCursor | null): { assigned: number; next: QueueCursor | null } {
    const ch = q.channel.get(channelId) as
      | { id: string; utilization: number; auto_assign_limit: number; auto_answer: number; notification_timeout_sec: number | null }
      | undefined;
    if (!ch) return { assigned: 0, next: null };
    const agentCount = q.channelAgentCount.get(channelId) as number;
    if (agentCount === 0) return { assigned: 0, next: null };
    const queued = (
      after ? q.queuedAfter.all(channelId, after[0], after[1], after[2], DISPATCH_BATCH) : q.queued.all(channelId, DISPATCH_BATCH)
    ) as Array<{ id: string; offer_seq: number; queue_rank: number; enqueued_at: number | null; rowid: number }>;
    const autoAnswer = ch.auto_answer === 1;
    let assigned = 0;
    for (const conv of queued) {
      const declined = q.declinedByChannelAgents.get({ ch: channelId, conv: conv.id }) as number;
      const ignoreDeclines: 0 | 1 = declined >= agentCount ? 1 : 0;
      const args = { ch: channelId, util: ch.utilization, lim: ch.auto_assign_limit, ignore: ignoreDeclines, conv: conv.id };
      const agent = bestAgent(args);
      if (!agent) {
        // Nobody fits this one. If nobody would fit any conversation, stop; else it was declines.
        if (ignoreDeclines === 1 || !bestAgent({ ...args, ignore: 1 })) return { assigned, next: null };
        continue;
      }
      const state = autoAnswer ? 'active' : 'offered';
      const expiresAt = autoAnswer ? null : now + (ch.notification_timeout_sec ?? 30) * 1000;
      if (q.assign.run(state, agent.id, ch.utilization, expiresAt, now, conv.id).changes !== 1) continue;
      q.chargeAgent.run(ch.utilization, now, now, agent.id);
      q.countHold.run(channelId, agent.id);
      q.history.run(conv.id, 'queued', state, agent.id, autoAnswer ? 'auto_answer' : 'offer', now);
      const seq = conv.offer_seq + 1;
      if (autoAnswer) {
        q.outbox.run('event', JSON.stringify({ agentId: agent.id, event: 'assigned', data: { conversationId: conv.id, channelId } }), now);
      } else {
        q.outbox.run(
          'event',
          JSON.stringify({ agentId: agent.id, event: 'offer', data: { conversationId: conv.id, channelId, expiresAt } }),
          now,
        );
        q.outbox.run('timer', JSON.stringify({ job: 'expire-offer', conversationId: conv.id, seq, runAt: expiresAt }), now);
      }
      assigned++;
    }
    // A full page and agents still free: go on after it. Not from the head again: what this page
    // skipped was declined by every agent free now, and stays so for the rest of this dispatch
    // (assignments only take agents away). Re-reading the head would find those same rows forever
    // once a hundred of them sit there, and the conversations behind them would wait.
    const last = queued.at(-1);
    return { assigned, next: queued.length === DISPATCH_BATCH && last ? [last.queue_rank, last.enqueued_at, last.rowid] : null };
  }

  function loadConversation(tx: Tx, id: string): ConversationRow {
    const row = tx.select().from(conversations).where(eq(conversations.id, id)).get();
    if (!row) throw AppError.notFound(`Conversation ${id}`);
    return row;
  }

  /** 403 unless the conversation is held by the acting agent (admin acts for whoever holds it). */
  function assertHolder(conv: ConversationRow, actor: Actor): string {
    if (actor.agentId !== null && conv.agentId !== actor.agentId) {
      throw new AppError('forbidden', 'This conversation is not yours');
    }
    if (!conv.agentId) throw new AppError('conflict', `Conversation is ${conv.state}, not held by an agent`);
    return conv.agentId;
  }

  function run<T>(fn: (tx: Tx, now: number) => T): T {
    const now = clock.now();
    const out = db.transaction((tx) => fn(tx, now), { behavior: 'immediate' });
    ctx.notifyOutbox();
    return out;
  }

  /**
   * Offer timer (§2.4): only the offer it was set for, and only once its deadline passed; a late
   * or duplicate timer changes nothing. Returns whether it took the offer back.
   */
  function expireOffer(conversationId: string, seq: number): boolean {
    return run((tx, now) => {
      const conv = tx.select().from(conversations).where(eq(conversations.id, conversationId)).get();
      if (!conv || conv.state !== 'offered' || conv.offerSeq !== seq || conv.offerExpiresAt === null) return false;
      if (now < conv.offerExpiresAt) return false;
      if (!timeOutOffer(tx, conv, now)) return false;
      markNotResponding(tx, conv.agentId!, now);
      return true;
    });
  }

  /**
   * An accept or reject that came at or after the offer's deadline returns `{expiredSeq}` from its
   * transaction: the timeout is then applied at once (its own transaction, as the timer's) and the
   * answer is 409. Else the transaction's result.
   */
  function unlessTimedOut<T>(conversationId: string, result: T | { expiredSeq: number }): T {
    if (typeof result === 'object' && result !== null && 'expiredSeq' in result) {
      expireOffer(conversationId, result.expiredSeq);
      throw new AppError('offer_gone', 'The offer is no longer available (timed out)');
    }
    return result as T;
  }

  return {
    /**
     * Pairs queued conversations of the channel with eligible agents until none fits, in
     * transactions of up to DISPATCH_BATCH conversations.
     */
    dispatch(channelId: string): DispatchResult {
      let total = 0;
      let cursor: QueueCursor | null = null;
      for (;;) {
        const r = run((_tx, now) => dispatchOnce(channelId, now, cursor));
        total += r.assigned;
        if (!r.next) return { assigned: total, more: false };
        cursor = r.next;
      }
    },

    accept(conversationId: string, actor: Actor) {
      const result = run((tx, now) => {
        const conv = loadConversation(tx, conversationId);
        const agentId = assertHolderOrGone(conv, actor);
        // Compare-and-set against the timeout: an accept at or after the deadline loses, even if
        // the timer has not fired yet; the timeout is then applied below, at once (as for reject),
        // so the offer does not stay pinned to this agent until a timer that may never come.
        if (conv.state === 'offered' && conv.offerExpiresAt !== null && now >= conv.offerExpiresAt) return { expiredSeq: conv.offerSeq };
        if (conv.state !== 'offered' || conv.offerExpiresAt === null) {
          throw new AppError('offer_gone', 'The offer is no longer available (timed out, rescinded or already answered)');
        }
        const res = tx
          .update(conversations)
          .set({ state: 'active', offerExpiresAt: null, updatedAt: now })
          .where(and(eq(conversations.id, conv.id), eq(conversations.state, 'offered'), eq(conversations.offerSeq, conv.offerSeq)))
          .run();
        if (res.changes !== 1) throw new AppError('offer_gone', 'The offer is no longer available');
        recordHistory(tx, { conversationId: conv.id, from: 'offered', to: 'active', agentId, reason: 'accepted', at: now });
        addToOutbox(tx, now, [agentEvent(agentId, 'assigned', { conversationId: conv.id, channelId: conv.channelId })]);
        return loadConversation(tx, conv.id);
      });
      return unlessTimedOut(conversationId, result);
    },

    reject(conversationId: string, actor: Actor) {
      const result = run((tx, now) => {
        const conv = loadConversation(tx, conversationId);
        const agentId = assertHolderOrGone(conv, actor);
        if (conv.state !== 'offered') throw new AppError('offer_gone', `Conversation is ${conv.state}, not offered`);
        // As with accept, the deadline wins: a reject at or after it would let an agent who did not
        // answer in time escape not_responding (§2.4). The timeout is applied below, at once.
        if (conv.offerExpiresAt !== null && now >= conv.offerExpiresAt) return { expiredSeq: conv.offerSeq };
        if (!returnToFront(tx, conv, 'rejected', now)) throw new AppError('offer_gone', 'The offer is no longer available');
        recordDecline(tx, conv.id, agentId, 'rejected', now);
        return loadConversation(tx, conv.id);
      });
      return unlessTimedOut(conversationId, result);
    },

    close(conversationId: string, actor: Actor) {
      return run((tx, now) => {
        const conv = loadConversation(tx, conversationId);
        const agentId = assertHolder(conv, actor);
        if (conv.state !== 'active') throw new AppError('conversation_not_active', `Conversation is ${conv.state}, not active`);
        const hasCodes = tx
          .select({ id: channelCompletionCodes.completionCodeId })
          .from(channelCompletionCodes)
          .where(eq(channelCompletionCodes.channelId, conv.channelId))
          .get();
        if (!hasCodes) {
          closeHeld(tx, conv, 'active', 'closed_by_agent', null, now);
          return loadConversation(tx, conv.id);
        }
        const timeoutSec =
          (sqlite.prepare('SELECT completion_code_timeout_sec FROM channels WHERE id = ?').pluck().get(conv.channelId) as number | null) ?? 60;
        const expiresAt = now + timeoutSec * 1000;
        // Wrap-up keeps its full share of the agent's load until a code is picked or time runs out.
        tx.update(conversations)
          .set({ state: 'wrapup', wrapupExpiresAt: expiresAt, updatedAt: now })
          .where(and(eq(conversations.id, conv.id), eq(conversations.state, 'active')))
          .run();
        recordHistory(tx, { conversationId: conv.id, from: 'active', to: 'wrapup', agentId, reason: 'closed_by_agent', at: now });
        const timer: OutboxItem = {
          kind: 'timer',
          payload: { job: 'expire-wrapup', conversationId: conv.id, seq: conv.offerSeq, runAt: expiresAt },
        };
        addToOutbox(tx, now, [timer]);
        return loadConversation(tx, conv.id);
      });
    },

    setCompletionCode(conversationId: string, completionCodeId: string, actor: Actor) {
      return run((tx, now) => {
        const conv = loadConversation(tx, conversationId);
        assertHolder(conv, actor);
        if (conv.state !== 'wrapup' && conv.state !== 'active') {
          throw new AppError('conflict', `Conversation is ${conv.state}; a completion code needs wrapup or active`);
        }
        const allowed = tx
          .select({ id: channelCompletionCodes.completionCodeId })
          .from(channelCompletionCodes)
          .where(and(eq(channelCompletionCodes.channelId, conv.channelId), eq(channelCompletionCodes.completionCodeId, completionCodeId)))
          .get();
        if (!allowed) throw AppError.validation('completionCodeId', "is not one of the channel's completion codes");
        closeHeld(tx, conv, conv.state, 'completion_code', completionCodeId, now);
        return loadConversation(tx, conv.id);
      });
    },

    expireOffer,

    /** Offers and wrap-ups whose deadline was at or before `before` (up to `limit` of each). */
    overdue(before: number, limit: number): { offers: Timer[]; wrapups: Timer[] } {
      return { offers: q.offersDue.all(before, limit) as Timer[], wrapups: q.wrapupsDue.all(before, limit) as Timer[] };
    },

    /** Live channels with queued conversations. */
    channelsWithQueue: (): string[] => q.channelsWithQueue.all() as string[],

    /** Wrap-up timer (§2.5): closes with no code, once its deadline passed. */
    expireWrapup(conversationId: string, seq: number): boolean {
      return run((tx, now) => {
        const conv = tx.select().from(conversations).where(eq(conversations.id, conversationId)).get();
        if (!conv || conv.state !== 'wrapup' || conv.offerSeq !== seq || conv.wrapupExpiresAt === null) return false;
        if (now < conv.wrapupExpiresAt) return false;
        if (!closeHeld(tx, conv, 'wrapup', 'wrapup_timeout', null, now)) return false;
        addToOutbox(tx, now, [agentEvent(conv.agentId!, 'wrapup-timeout', { conversationId: conv.id })]);
        return true;
      });
    },

    /**
     * The chatbot hands a conversation over to ACD (DESIGN.md §1: a chatbot gets the conversation
     * first, ACD only after handoff): `bot` → `queued` at the back of the queue, then dispatch.
     * 409 from any other state.
     */
    handoff(conversationId: string) {
      return run((tx, now) => {
        const conv = loadConversation(tx, conversationId);
        const res = tx
          .update(conversations)
          .set({ state: 'queued', queueRank: 1, enqueuedAt: now, updatedAt: now })
          .where(and(eq(conversations.id, conv.id), eq(conversations.state, 'bot')))
          .run();
        if (res.changes !== 1) throw new AppError('conflict', `Conversation is ${conv.state}, not with the chatbot`);
        recordHistory(tx, { conversationId: conv.id, from: 'bot', to: 'queued', agentId: null, reason: 'handoff', at: now });
        addToOutbox(tx, now, [{ kind: 'dispatch', payload: { channelId: conv.channelId } }]);
        return loadConversation(tx, conv.id);
      });
    },

    /** Waiting conversations of a channel, in the order they will be offered. */
    queue(channelId: string) {
      const now = clock.now();
      const rows = sqlite
        .prepare(
          `SELECT id, contact_id, queue_rank, enqueued_at, created_at FROM conversations
           WHERE channel_id = ? AND state = 'queued' ORDER BY queue_rank, enqueued_at, rowid`,
        )
        .all(channelId) as Array<{ id: string; contact_id: string; queue_rank: number; enqueued_at: number; created_at: number }>;
      return rows.map((r, i) => ({
        position: i + 1,
        conversationId: r.id,
        contactId: r.contact_id,
        returned: r.queue_rank === 0,
        enqueuedAt: r.enqueued_at,
        waitMs: Math.max(0, now - r.enqueued_at),
      }));
    },
  };

  /** Like assertHolder, but an offer that moved on is a 409 (gone), not a 403, for the agent it was offered to. */
  function assertHolderOrGone(conv: ConversationRow, actor: Actor): string {
    if (conv.agentId === null) {
      if (actor.agentId === null) throw new AppError('offer_gone', `Conversation is ${conv.state}, not offered`);
      const declined = db
        .select({ a: conversationDeclines.agentId })
        .from(conversationDeclines)
        .where(and(eq(conversationDeclines.conversationId, conv.id), eq(conversationDeclines.agentId, actor.agentId)))
        .get();
      const wasOffered = declined !== undefined || hadOffer(conv.id, actor.agentId);
      if (wasOffered) throw new AppError('offer_gone', 'The offer is no longer available');
      throw new AppError('forbidden', 'This conversation is not yours');
    }
    if (actor.agentId !== null && conv.agentId !== actor.agentId) {
      if (hadOffer(conv.id, actor.agentId)) throw new AppError('offer_gone', 'The offer is no longer available');
      throw new AppError('forbidden', 'This conversation is not yours');
    }
    return conv.agentId;
  }

  function hadOffer(conversationId: string, agentId: string): boolean {
    return (
      sqlite
        .prepare("SELECT 1 FROM conversation_history WHERE conversation_id = ? AND agent_id = ? AND to_state = 'offered' LIMIT 1")
        .pluck()
        .get(conversationId, agentId) !== undefined
    );
  }
}

export type AcdService = ReturnType<typeof createAcdService>;
