import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { agentChannelHolds, agents, channelAgents, conversationHistory, conversations, type ConversationState } from '../db/schema.js';
import { addToOutbox, type OutboxItem } from '../queue/outbox.js';

/**
 * Low-level conversation state changes, always inside the caller's transaction. Each one is a
 * compare-and-set on the conversation's current state (and offer sequence where it matters):
 * when the row is no longer in the expected state the change does nothing and returns false.
 */

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface HistoryEntry {
  conversationId: string;
  from: ConversationState | null;
  to: ConversationState;
  agentId: string | null;
  reason: string;
  at: number;
}

export function recordHistory(tx: Tx, e: HistoryEntry): void {
  tx.insert(conversationHistory)
    .values({ conversationId: e.conversationId, fromState: e.from, toState: e.to, agentId: e.agentId, reason: e.reason, at: e.at })
    .run();
}

/**
 * An agent takes (+1) or lets go of (-1) a conversation of a channel: its load moves by the
 * conversation's utilization and its per-channel hold counter by one (DESIGN.md §2.1 inputs),
 * in the caller's transaction.
 */
export function changeHold(tx: Tx, hold: { agentId: string; channelId: string; utilization: number }, sign: 1 | -1, now: number): void {
  tx.update(agents)
    .set({ load: sql`max(0, ${agents.load} + ${sign * hold.utilization})`, updatedAt: now })
    .where(eq(agents.id, hold.agentId))
    .run();
  tx.insert(agentChannelHolds)
    .values({ channelId: hold.channelId, agentId: hold.agentId, held: Math.max(0, sign) })
    .onConflictDoUpdate({
      target: [agentChannelHolds.channelId, agentChannelHolds.agentId],
      set: { held: sql`max(0, ${agentChannelHolds.held} + ${sign})` },
    })
    .run();
}

/**
 * Capacity freed on an agent: dispatch the conversation's channel and every channel the agent
 * serves (its load counts across channels).
 */
export function dispatchAfterRelease(tx: Tx, channelId: string, agentId: string | null, now: number): void {
  const ids = new Set([channelId]);
  if (agentId) {
    for (const r of tx.select({ id: channelAgents.channelId }).from(channelAgents).where(eq(channelAgents.agentId, agentId)).all()) {
      ids.add(r.id);
    }
  }
  addToOutbox(tx, now, [...ids].map((id) => ({ kind: 'dispatch' as const, payload: { channelId: id } })));
}

export function agentEvent(agentId: string, event: string, data: Record<string, unknown>): OutboxItem {
  return { kind: 'event', payload: { agentId, event, data } };
}

interface HeldConversation {
  id: string;
  channelId: string;
  state: ConversationState;
  agentId: string | null;
  utilization: number | null;
  offerSeq: number;
}

/**
 * Puts an offered conversation back at the front of its channel's queue (reject, timeout, or the
 * agent leaving `online`), releasing the agent's load. CAS on state = offered and the offer seq.
 */
export function returnToFront(tx: Tx, conv: HeldConversation, reason: string, now: number): boolean {
  const res = tx
    .update(conversations)
    .set({
      state: 'queued',
      queueRank: 0,
      agentId: null,
      utilization: null,
      offerExpiresAt: null,
      updatedAt: now,
    })
    .where(and(eq(conversations.id, conv.id), eq(conversations.state, 'offered'), eq(conversations.offerSeq, conv.offerSeq)))
    .run();
  if (res.changes !== 1) return false;
  if (conv.agentId) changeHold(tx, { agentId: conv.agentId, channelId: conv.channelId, utilization: conv.utilization ?? 0 }, -1, now);
  recordHistory(tx, { conversationId: conv.id, from: 'offered', to: 'queued', agentId: conv.agentId, reason, at: now });
  dispatchAfterRelease(tx, conv.channelId, conv.agentId, now);
  return true;
}

/**
 * Ends the agent's hold on an active/wrapup conversation (closing it), releasing load and
 * triggering dispatch, since capacity was freed.
 */
export function closeHeld(
  tx: Tx,
  conv: HeldConversation,
  from: 'active' | 'wrapup',
  reason: string,
  completionCodeId: string | null,
  now: number,
): boolean {
  const res = tx
    .update(conversations)
    .set({ state: 'closed', completionCodeId, wrapupExpiresAt: null, closedAt: now, updatedAt: now })
    .where(and(eq(conversations.id, conv.id), eq(conversations.state, from)))
    .run();
  if (res.changes !== 1) return false;
  if (conv.agentId) changeHold(tx, { agentId: conv.agentId, channelId: conv.channelId, utilization: conv.utilization ?? 0 }, -1, now);
  recordHistory(tx, { conversationId: conv.id, from, to: 'closed', agentId: conv.agentId, reason, at: now });
  dispatchAfterRelease(tx, conv.channelId, conv.agentId, now);
  return true;
}
