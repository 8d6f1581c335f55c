import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import {
  agentChannelHolds,
  agents,
  channelAgents,
  conversationDeclines,
  conversationHistory,
  conversations,
  type ConversationState,
} from '../db/schema.js';
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

/**
 * The agent said no to the conversation, by rejecting it or by letting its offer time out: they
 * are not offered it again unless every agent of the channel has declined it (§2.1).
 */
export function recordDecline(tx: Tx, conversationId: string, agentId: string, reason: 'rejected' | 'timeout', now: number): void {
  tx.insert(conversationDeclines)
    .values({ conversationId, agentId, reason, at: now })
    .onConflictDoUpdate({ target: [conversationDeclines.conversationId, conversationDeclines.agentId], set: { reason, at: now } })
    .run();
}

/**
 * An offer whose deadline has passed (§2.4): back to the front of the queue, recorded as the
 * agent's decline, with an `offer-timeout` event. Whoever applies it decides what becomes of the
 * agent's status. False when the offer was no longer pending (CAS, see returnToFront).
 */
export function timeOutOffer(tx: Tx, conv: HeldConversation, now: number): boolean {
  if (!conv.agentId || !returnToFront(tx, conv, 'offer_timeout', now)) return false;
  recordDecline(tx, conv.id, conv.agentId, 'timeout', now);
  addToOutbox(tx, now, [agentEvent(conv.agentId, 'offer-timeout', { conversationId: conv.id })]);
  return true;
}

/**
 * Takes a pending offer back from its agent (they left `online`, were set not_responding, or were
 * taken off the channel): to the front of the queue with an `offer-rescinded` event. An offer
 * already past its deadline timed out before that, even if its timer has not run: it counts as
 * the agent's decline (timeOutOffer), as an accept or reject after the deadline does (§2.4).
 */
export function takeBackOffer(tx: Tx, conv: HeldConversation & { offerExpiresAt: number | null }, reason: string, now: number): 'timed-out' | 'rescinded' | 'gone' {
  if (conv.offerExpiresAt !== null && now >= conv.offerExpiresAt) return timeOutOffer(tx, conv, now) ? 'timed-out' : 'gone';
  if (!conv.agentId || !returnToFront(tx, conv, reason, now)) return 'gone';
  addToOutbox(tx, now, [agentEvent(conv.agentId, 'offer-rescinded', { conversationId: conv.id, reason })]);
  return 'rescinded';
}

/** Takes the agent out of rotation after an unanswered offer (§2.4) and takes back its other offers. */
export function markNotResponding(tx: Tx, agentId: string, now: number): void {
  const res = tx
    .update(agents)
    .set({ status: 'busy', substatus: 'not_responding', statusChangedAt: now, updatedAt: now })
    .where(and(eq(agents.id, agentId), eq(agents.status, 'online')))
    .run();
  if (res.changes !== 1) return;
  takeBackOffersOf(tx, agentId, 'agent_left_online', now);
  addToOutbox(tx, now, [agentEvent(agentId, 'status', { status: 'busy', substatus: 'not_responding' })]);
}

/** Takes back every pending offer of the agent (takeBackOffer). */
export function takeBackOffersOf(tx: Tx, agentId: string, reason: string, now: number): void {
  const offered = tx
    .select()
    .from(conversations)
    .where(and(eq(conversations.agentId, agentId), eq(conversations.state, 'offered')))
    .all();
  for (const conv of offered) takeBackOffer(tx, conv, reason, now);
}

/**
 * Closes a conversation that is not closed yet, whatever its state, for a reason outside the
 * agent's hands (its channel was deleted): an agent holding it (offered, active, wrap-up) lets go
 * of its load and is told (`offer-rescinded` for an offer, `closed` otherwise). CAS on the state
 * (and offer seq) read by the caller: false when it had moved on.
 */
export function closeAny(tx: Tx, conv: HeldConversation, reason: string, now: number): boolean {
  if (conv.state === 'closed') return false;
  const cas = [eq(conversations.id, conv.id), eq(conversations.state, conv.state)];
  if (conv.state === 'offered') cas.push(eq(conversations.offerSeq, conv.offerSeq));
  const res = tx
    .update(conversations)
    .set({ state: 'closed', offerExpiresAt: null, wrapupExpiresAt: null, closedAt: now, updatedAt: now })
    .where(and(...cas))
    .run();
  if (res.changes !== 1) return false;
  const holds = conv.agentId !== null && (conv.state === 'offered' || conv.state === 'active' || conv.state === 'wrapup');
  recordHistory(tx, { conversationId: conv.id, from: conv.state, to: 'closed', agentId: holds ? conv.agentId : null, reason, at: now });
  if (holds) {
    const agentId = conv.agentId!;
    changeHold(tx, { agentId, channelId: conv.channelId, utilization: conv.utilization ?? 0 }, -1, now);
    const event = conv.state === 'offered' ? 'offer-rescinded' : 'closed';
    addToOutbox(tx, now, [agentEvent(agentId, event, { conversationId: conv.id, reason })]);
    dispatchAfterRelease(tx, conv.channelId, agentId, now);
  }
  return true;
}
