import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/lib/clock.js';
import { newId } from '../src/lib/ids.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';
import { expectHoldCountersConsistent } from './invariants.js';
import { createAcdSweeper } from '../src/acd/sweeper.js';

/**
 * Every rule of DESIGN.md §2 on a fake clock, through the ACD service with a real SQLite file.
 * Dispatch is called directly (the worker only calls the same function).
 */

let h: Harness;
let clock: FakeClock;
beforeEach(() => {
  clock = new FakeClock(Date.UTC(2026, 0, 1, 9));
  h = createHarness({ clock });
});
afterEach(async () => {
  // Every rule's end state keeps the load and per-channel hold counters equal to the conversations held.
  expectHoldCountersConsistent(h.deps.db.$client);
  await h.close();
});

const acd = () => h.deps.services.acd;
const sql = () => h.deps.db.$client;

async function agent(name: string): Promise<{ id: string; token: string }> {
  return json(await h.api('POST', '/api/agents', { name, email: `${name.toLowerCase()}-${newId('ag')}@example.com` }));
}

async function online(id: string): Promise<void> {
  expect((await h.api('PUT', `/api/agents/${id}/status`, { status: 'online' })).status).toBe(200);
}

async function channel(agentIds: string[], handling: Record<string, unknown>): Promise<string> {
  const res = await h.api(
    'POST',
    '/api/channels',
    channelBody({
      agentIds,
      handling: { autoAssignLimit: 5, completionCodeIds: [], completionCodeTimeoutSec: null, ...handling },
    }),
  );
  expect(res.status).toBe(201);
  return (await json(res)).id;
}

/** Queues a conversation the way ingest does (new contact, state queued, enqueued now). */
function enqueue(channelId: string): string {
  const now = clock.now();
  const contactId = newId('ct');
  const id = newId('cv');
  sql()
    .prepare('INSERT INTO contacts (id, channel_id, provider_contact_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
    .run(contactId, channelId, contactId, now, now);
  sql()
    .prepare(
      `INSERT INTO conversations (id, channel_id, contact_id, type, state, queue_rank, enqueued_at, created_at, updated_at)
       VALUES (?, ?, ?, 'chat', 'queued', 1, ?, ?, ?)`,
    )
    .run(id, channelId, contactId, now, now, now);
  clock.advance(10);
  return id;
}

/** An active conversation held by the agent since `at`, written as an assignment writes it (load and hold counters). */
function holdActive(channelId: string, agentId: string, utilization: number, at: number): void {
  const id = enqueue(channelId);
  sql().prepare("UPDATE conversations SET state = 'active', agent_id = ?, utilization = ? WHERE id = ?").run(agentId, utilization, id);
  sql().prepare('UPDATE agents SET load = load + ?, last_assigned_at = ? WHERE id = ?').run(utilization, at, agentId);
  sql().prepare('INSERT INTO agent_channel_holds (channel_id, agent_id, held) VALUES (?, ?, 1)').run(channelId, agentId);
}

function conv(id: string): { state: string; agentId: string | null; completionCodeId: string | null } {
  const r = sql().prepare('SELECT state, agent_id, completion_code_id FROM conversations WHERE id = ?').get(id) as any;
  return { state: r.state, agentId: r.agent_id, completionCodeId: r.completion_code_id };
}

function agentRow(id: string): { status: string; substatus: string | null; load: number } {
  return sql().prepare('SELECT status, substatus, load FROM agents WHERE id = ?').get(id) as any;
}

const autoAnswer = { autoAnswer: true, notificationTimeoutSec: null };
const offers = (sec = 30) => ({ autoAnswer: false, notificationTimeoutSec: sec });

describe('eligibility', () => {
  it('sums utilization across channels: load + utilization must stay ≤ 100', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const chA = await channel([a.id], { utilization: 60, ...autoAnswer });
    const chB = await channel([a.id], { utilization: 50, ...autoAnswer });
    const c1 = enqueue(chA);
    acd().dispatch(chA);
    expect(conv(c1)).toMatchObject({ state: 'active', agentId: a.id });
    expect(agentRow(a.id).load).toBe(60);
    const c2 = enqueue(chB);
    acd().dispatch(chB);
    expect(conv(c2).state).toBe('queued');
    acd().close(c1, { agentId: a.id });
    expect(agentRow(a.id).load).toBe(0);
    acd().dispatch(chB);
    expect(conv(c2)).toMatchObject({ state: 'active', agentId: a.id });
  });

  it('caps conversations per agent per channel at autoAssignLimit', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 10, autoAssignLimit: 2, ...autoAnswer });
    const ids = [enqueue(ch), enqueue(ch), enqueue(ch)];
    expect(acd().dispatch(ch).assigned).toBe(2);
    expect(ids.map((i) => conv(i).state)).toEqual(['active', 'active', 'queued']);
    expect(agentRow(a.id).load).toBe(20);
  });

  it('offers only to online agents of the channel list', async () => {
    const inList = await agent('Ana');
    const notInList = await agent('Bo');
    await online(notInList.id);
    const ch = await channel([inList.id], { utilization: 10, ...autoAnswer });
    const c = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c).state).toBe('queued');
    await online(inList.id);
    acd().dispatch(ch);
    expect(conv(c).agentId).toBe(inList.id);
  });
});

describe('choice and order', () => {
  it('picks the longest idle agent: never assigned counts from going online', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(b.id);
    clock.advance(1000);
    await online(a.id);
    const ch = await channel([a.id, b.id], { utilization: 10, ...autoAnswer });
    const c1 = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c1).agentId).toBe(b.id); // online longer
    const c2 = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c2).agentId).toBe(a.id); // b was just assigned
  });

  it('breaks idle ties by lowest load, then by id', async () => {
    const [x, y, z] = [await agent('X'), await agent('Y'), await agent('Z')];
    for (const ag of [x, y, z]) await online(ag.id);
    const ch = await channel([x.id, y.id, z.id], { utilization: 10, ...autoAnswer });
    const other = await channel([x.id, y.id, z.id], { utilization: 10, ...autoAnswer });
    const t = clock.now();
    const ids = [x.id, y.id, z.id].sort();
    // Equal idle times; loads 30 / 10 / 10 from conversations held in another channel.
    holdActive(other, ids[0]!, 30, t);
    holdActive(other, ids[1]!, 10, t);
    holdActive(other, ids[2]!, 10, t);
    const c = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c).agentId).toBe(ids[1]); // load 10 beats 30; id breaks the 10/10 tie
  });

  it('serves the queue oldest first and puts a rejected conversation back at the front', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    clock.advance(10);
    await online(b.id);
    const ch = await channel([a.id, b.id], { utilization: 100, autoAssignLimit: 1, ...offers() });
    const [c1, c2, c3] = [enqueue(ch), enqueue(ch), enqueue(ch)];
    acd().dispatch(ch);
    expect(conv(c1)).toMatchObject({ state: 'offered', agentId: a.id });
    expect(conv(c2)).toMatchObject({ state: 'offered', agentId: b.id });
    acd().reject(c2, { agentId: b.id });
    expect(conv(c2).state).toBe('queued');
    expect(agentRow(b.id).status).toBe('online'); // a reject keeps the agent online
    const queue = acd().queue(ch);
    expect(queue.map((q) => q.conversationId)).toEqual([c2, c3]);
    expect(queue[0]!.returned).toBe(true);
  });

  it('does not re-offer to an agent who rejected, unless every agent of the channel has', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    clock.advance(10);
    await online(b.id);
    const ch = await channel([a.id, b.id], { utilization: 10, ...offers() });
    const c = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c).agentId).toBe(a.id);
    acd().reject(c, { agentId: a.id });
    acd().dispatch(ch);
    expect(conv(c).agentId).toBe(b.id);
    acd().reject(c, { agentId: b.id });
    acd().dispatch(ch);
    expect(conv(c)).toMatchObject({ state: 'offered' }); // everyone declined: back in rotation
    expect([a.id, b.id]).toContain(conv(c).agentId);
  });

  it('offers the next conversation when the head was declined by the only free agent', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const other = await agent('Bo'); // in the list, offline: not every agent declined
    const ch = await channel([a.id, other.id], { utilization: 10, ...offers() });
    const c1 = enqueue(ch);
    const c2 = enqueue(ch);
    acd().dispatch(ch);
    acd().reject(c1, { agentId: a.id });
    acd().reject(c2, { agentId: a.id });
    const c3 = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c1).state).toBe('queued');
    expect(conv(c3)).toMatchObject({ state: 'offered', agentId: a.id });
  });

  it('looks past a full page of conversations the free agent declined', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const other = await agent('Bo'); // offline: not every agent declined
    const ch = await channel([a.id, other.id], { utilization: 0, autoAssignLimit: 1000, ...offers() });
    const declined = Array.from({ length: 250 }, () => enqueue(ch));
    acd().dispatch(ch);
    for (const c of declined) acd().reject(c, { agentId: a.id });
    const next = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(next)).toMatchObject({ state: 'offered', agentId: a.id });
    expect(declined.every((c) => conv(c).state === 'queued')).toBe(true);
  });
});

describe('chatbot handoff', () => {
  it('hands a bot conversation to ACD at the back of the queue; 409 from any other state, admin only', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 10, ...offers() });
    const first = enqueue(ch);
    const withBot = enqueue(ch);
    sql().prepare("UPDATE conversations SET state = 'bot', enqueued_at = NULL WHERE id = ?").run(withBot);
    acd().dispatch(ch);
    expect(conv(withBot).state).toBe('bot'); // ACD leaves the chatbot's conversations alone
    expect((await h.api('POST', `/api/conversations/${withBot}/handoff`, undefined, a.token)).status).toBe(403);

    const res = await h.api('POST', `/api/conversations/${withBot}/handoff`);
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: withBot, state: 'queued', agentId: null });
    expect(sql().prepare("SELECT count(*) FROM outbox WHERE kind = 'dispatch'").pluck().get()).toBeGreaterThan(0);
    acd().dispatch(ch);
    expect(conv(first)).toMatchObject({ state: 'offered', agentId: a.id });
    expect(conv(withBot)).toMatchObject({ state: 'offered', agentId: a.id });

    const again = await h.api('POST', `/api/conversations/${withBot}/handoff`);
    expect(again.status).toBe(409);
    expect((await json(again)).detail).toMatch(/offered, not with the chatbot/);
    expect((await h.api('POST', '/api/conversations/cv_unknown/handoff')).status).toBe(404);
  });
});

describe('offers and timeouts', () => {
  it('accepting makes the conversation active; the timeout wins a tie with a late accept', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 50, ...offers(30) });
    const c1 = enqueue(ch);
    acd().dispatch(ch);
    clock.advance(29_999);
    acd().accept(c1, { agentId: a.id });
    expect(conv(c1).state).toBe('active');
    expect(acd().expireOffer(c1, 1)).toBe(false); // a late timer changes nothing

    const c2 = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c2).state).toBe('offered');
    clock.advance(30_000); // exactly the deadline: accept and timer race in the same tick
    expect(() => acd().accept(c2, { agentId: a.id })).toThrow(/no longer available/);
    // The late accept applied the timeout itself (see the next tests): the timer finds it done.
    expect(acd().expireOffer(c2, 1)).toBe(false);
    expect(conv(c2)).toMatchObject({ state: 'queued', agentId: null });
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 50 });
    const res = await h.api('POST', `/api/conversations/${c2}/accept`, undefined, a.token);
    expect(res.status).toBe(409);
  });

  it('a reject at or after the deadline loses to the timeout, even before the timer runs', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 50, ...offers(30) });
    const c = enqueue(ch);
    acd().dispatch(ch);
    clock.advance(45_000); // the timer job is late (a busy worker, a slow Redis)
    const res = await h.api('POST', `/api/conversations/${c}/reject`, undefined, a.token);
    expect(res.status).toBe(409);
    // The timeout is applied at once: the agent does not escape not_responding by rejecting late.
    expect(conv(c)).toMatchObject({ state: 'queued', agentId: null });
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
    expect(acd().expireOffer(c, 1)).toBe(false); // the timer, when it comes, finds it done
  });

  it('an accept after the deadline applies the timeout at once, even with the timer lost', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 50, ...offers(30) });
    const c = enqueue(ch);
    acd().dispatch(ch);
    clock.advance(45_000); // the timer job never comes (Redis lost it)
    const res = await h.api('POST', `/api/conversations/${c}/accept`, undefined, a.token);
    expect(res.status).toBe(409);
    expect(conv(c)).toMatchObject({ state: 'queued', agentId: null });
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
    expect(acd().expireOffer(c, 1)).toBe(false);
  });

  it('gives a not-responding agent no offers until it is online again', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 10, ...offers(5) });
    const c = enqueue(ch);
    acd().dispatch(ch);
    clock.advance(5_000);
    acd().expireOffer(c, 1);
    acd().dispatch(ch);
    expect(conv(c).state).toBe('queued');
    await online(a.id);
    acd().dispatch(ch); // timed-out agent is the only one: every agent declined → allowed again
    expect(conv(c)).toMatchObject({ state: 'offered', agentId: a.id });
  });

  it('rescinds pending offers when the agent goes offline or busy; active conversations stay', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const chOffer = await channel([a.id], { utilization: 20, ...offers() });
    const chAuto = await channel([a.id], { utilization: 30, ...autoAnswer });
    const active = enqueue(chAuto);
    acd().dispatch(chAuto);
    const offered = enqueue(chOffer);
    acd().dispatch(chOffer);
    expect(agentRow(a.id).load).toBe(50);
    await h.api('PUT', `/api/agents/${a.id}/status`, { status: 'offline' });
    expect(conv(offered)).toMatchObject({ state: 'queued', agentId: null });
    expect(conv(active)).toMatchObject({ state: 'active', agentId: a.id });
    expect(agentRow(a.id).load).toBe(30);
    expect(acd().queue(chOffer)[0]).toMatchObject({ conversationId: offered, returned: true });
  });
});

describe('offers and timeouts, when the agent or the channel changes', () => {
  const declines = (c: string) => sql().prepare('SELECT agent_id, reason FROM conversation_declines WHERE conversation_id = ?').all(c);

  it('a status change after the deadline counts as the timeout (a decline), not as a rescind', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    clock.advance(1_000);
    await online(b.id);
    const ch = await channel([a.id, b.id], { utilization: 50, ...offers(30) });
    const c = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c)).toMatchObject({ state: 'offered', agentId: a.id }); // longest idle
    clock.advance(45_000); // the timer job is late
    expect((await h.api('PUT', `/api/agents/${a.id}/status`, { status: 'busy', substatus: 'lunch' })).status).toBe(200);
    expect(conv(c)).toMatchObject({ state: 'queued', agentId: null });
    expect(declines(c)).toEqual([{ agent_id: a.id, reason: 'timeout' }]);
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'lunch', load: 0 }); // the status asked for
    expect(acd().expireOffer(c, 1)).toBe(false); // the timer, when it comes, finds it done
    // Ana timed out on it and Bo has not: it is not offered to Ana again while Bo could take it.
    await online(a.id);
    expect((await h.api('PUT', `/api/agents/${b.id}/status`, { status: 'busy', substatus: 'meeting' })).status).toBe(200);
    acd().dispatch(ch);
    expect(conv(c).state).toBe('queued');
    await online(b.id);
    acd().dispatch(ch);
    expect(conv(c)).toMatchObject({ state: 'offered', agentId: b.id });
  });

  it('a timeout that takes the agent out of rotation times out its other offers past their deadline too (declines)', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 10, ...offers(30) });
    const [c1, c2] = [enqueue(ch), enqueue(ch)];
    acd().dispatch(ch);
    expect([conv(c1).state, conv(c2).state]).toEqual(['offered', 'offered']);
    clock.advance(45_000);
    expect(acd().expireOffer(c1, 1)).toBe(true); // c2's timer has not run yet
    expect(declines(c1)).toEqual([{ agent_id: a.id, reason: 'timeout' }]);
    expect(declines(c2)).toEqual([{ agent_id: a.id, reason: 'timeout' }]);
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
  });

  it('a status change before the deadline still rescinds the offer, with no decline', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 50, ...offers(30) });
    const c = enqueue(ch);
    acd().dispatch(ch);
    clock.advance(29_999);
    await h.api('PUT', `/api/agents/${a.id}/status`, { status: 'offline' });
    expect(conv(c)).toMatchObject({ state: 'queued', agentId: null });
    expect(declines(c)).toEqual([]);
  });

  it('takes back a pending offer from an agent removed from the channel; what they hold stays theirs', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    clock.advance(1_000);
    const ch = await channel([a.id, b.id], { utilization: 20, ...offers(30) });
    const held = enqueue(ch);
    acd().dispatch(ch);
    expect((await h.api('POST', `/api/conversations/${held}/accept`, undefined, a.token)).status).toBe(200);
    const offered = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(offered)).toMatchObject({ state: 'offered', agentId: a.id });
    expect(agentRow(a.id).load).toBe(40);

    expect((await h.api('PATCH', `/api/channels/${ch}`, { agentIds: [b.id] })).status).toBe(200);
    expect(conv(offered)).toMatchObject({ state: 'queued', agentId: null });
    expect(conv(held)).toMatchObject({ state: 'active', agentId: a.id });
    expect(agentRow(a.id)).toMatchObject({ status: 'online', load: 20 });
    const history = sql().prepare('SELECT reason FROM conversation_history WHERE conversation_id = ? ORDER BY id DESC LIMIT 1').pluck().get(offered);
    expect(history).toBe('agent_removed_from_channel');
    expect((await h.api('POST', `/api/conversations/${offered}/accept`, undefined, a.token)).status).toBe(409);
    await online(b.id);
    acd().dispatch(ch);
    expect(conv(offered)).toMatchObject({ state: 'offered', agentId: b.id });
  });

  it('removing an agent whose offer is past its deadline applies the timeout: a decline, and not_responding', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    const ch = await channel([a.id, b.id], { utilization: 20, ...offers(30) });
    const c = enqueue(ch);
    acd().dispatch(ch);
    expect(conv(c)).toMatchObject({ state: 'offered', agentId: a.id });
    clock.advance(45_000); // the timer is late
    expect((await h.api('PATCH', `/api/channels/${ch}`, { agentIds: [b.id] })).status).toBe(200);
    expect(conv(c)).toMatchObject({ state: 'queued', agentId: null });
    expect(declines(c)).toEqual([{ agent_id: a.id, reason: 'timeout' }]);
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
  });

  it('deleting a channel closes its conversations in every state and releases the agents holding them', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const code = await json(await h.api('POST', '/api/completion-codes', { code: `done-${newId('cc')}`, label: 'Done' }));
    const ch = await channel([a.id], { utilization: 10, ...offers(30), completionCodeIds: [code.id], completionCodeTimeoutSec: 600 });
    const other = await channel([a.id], { utilization: 10, ...autoAnswer });
    const [active, wrapup, offered] = [enqueue(ch), enqueue(ch), enqueue(ch)];
    acd().dispatch(ch);
    for (const c of [active, wrapup]) expect((await h.api('POST', `/api/conversations/${c}/accept`, undefined, a.token)).status).toBe(200);
    acd().close(wrapup, { agentId: a.id });
    const queued = enqueue(ch);
    const elsewhere = enqueue(other);
    acd().dispatch(other);
    expect([active, wrapup, offered, queued].map((c) => conv(c).state)).toEqual(['active', 'wrapup', 'offered', 'queued']);
    expect(agentRow(a.id).load).toBe(40);
    sql().prepare('DELETE FROM outbox').run();

    expect((await h.api('DELETE', `/api/channels/${ch}`)).status).toBe(204);
    for (const c of [active, wrapup, offered, queued]) expect(conv(c).state).toBe('closed');
    expect(conv(elsewhere)).toMatchObject({ state: 'active', agentId: a.id }); // another channel's: untouched
    expect(agentRow(a.id).load).toBe(10);
    const reasons = sql()
      .prepare("SELECT conversation_id, from_state FROM conversation_history WHERE reason = 'channel_deleted' ORDER BY conversation_id")
      .all() as Array<{ conversation_id: string; from_state: string }>;
    expect(Object.fromEntries(reasons.map((r) => [r.conversation_id, r.from_state]))).toEqual({ [active]: 'active', [wrapup]: 'wrapup', [offered]: 'offered', [queued]: 'queued' });
    const events = (sql().prepare("SELECT payload FROM outbox WHERE kind = 'event'").pluck().all() as string[]).map((p) => JSON.parse(p));
    expect(events.map((e) => [e.event, e.data.conversationId]).sort()).toEqual(
      [['closed', active], ['closed', wrapup], ['offer-rescinded', offered]].sort(),
    );
    // Nothing can act on them any more, and their timers find nothing to do.
    expect((await h.api('POST', `/api/conversations/${offered}/accept`, undefined, a.token)).status).toBe(409);
    expect(acd().expireOffer(offered, 1)).toBe(false);
    clock.advance(600_000);
    expect(acd().expireWrapup(wrapup, 1)).toBe(false);
  });
});

describe('closing and wrap-up', () => {
  async function codes(): Promise<[string, string]> {
    const c1 = await json(await h.api('POST', '/api/completion-codes', { code: `sale-${newId('cc')}`, label: 'Sale' }));
    const c2 = await json(await h.api('POST', '/api/completion-codes', { code: `info-${newId('cc')}`, label: 'Info' }));
    return [c1.id, c2.id];
  }

  it('closes straight away without completion codes', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 40, ...autoAnswer });
    const c = enqueue(ch);
    acd().dispatch(ch);
    acd().close(c, { agentId: a.id });
    expect(conv(c).state).toBe('closed');
    expect(agentRow(a.id).load).toBe(0);
  });

  it('holds the load through wrap-up until a channel code is picked', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const [code] = await codes();
    const foreign = await json(await h.api('POST', '/api/completion-codes', { code: `x-${newId('cc')}`, label: 'X' }));
    const ch = await channel([a.id], { utilization: 100, ...autoAnswer, completionCodeIds: [code], completionCodeTimeoutSec: 60 });
    const c1 = enqueue(ch);
    const c2 = enqueue(ch);
    acd().dispatch(ch);
    acd().close(c1, { agentId: a.id });
    expect(conv(c1).state).toBe('wrapup');
    acd().dispatch(ch);
    expect(conv(c2).state).toBe('queued'); // wrap-up still counts
    const bad = await h.api('POST', `/api/conversations/${c1}/completion-code`, { completionCodeId: foreign.id }, a.token);
    expect(bad.status).toBe(400);
    expect((await json(bad)).field).toBe('completionCodeId');
    const ok = await h.api('POST', `/api/conversations/${c1}/completion-code`, { completionCodeId: code }, a.token);
    expect(ok.status).toBe(200);
    expect(conv(c1)).toMatchObject({ state: 'closed', completionCodeId: code });
    acd().dispatch(ch);
    expect(conv(c2)).toMatchObject({ state: 'active', agentId: a.id });
  });

  it('closes with no code when the completion-code timeout passes', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const [code] = await codes();
    const ch = await channel([a.id], { utilization: 50, ...autoAnswer, completionCodeIds: [code], completionCodeTimeoutSec: 60 });
    const c = enqueue(ch);
    acd().dispatch(ch);
    acd().close(c, { agentId: a.id });
    clock.advance(59_999);
    expect(acd().expireWrapup(c, 1)).toBe(false);
    clock.advance(1);
    expect(acd().expireWrapup(c, 1)).toBe(true);
    expect(conv(c)).toMatchObject({ state: 'closed', completionCodeId: null });
    expect(agentRow(a.id).load).toBe(0);
  });
});

describe('closing and wrap-up, when the channel loses its codes', () => {
  it('ends its wrap-ups at once with no code (none could be picked any more); another set of codes leaves them', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const c1 = await json(await h.api('POST', '/api/completion-codes', { code: `sale-${newId('cc')}`, label: 'Sale' }));
    const c2 = await json(await h.api('POST', '/api/completion-codes', { code: `info-${newId('cc')}`, label: 'Info' }));
    const ch = await channel([a.id], { utilization: 50, ...autoAnswer, completionCodeIds: [c1.id], completionCodeTimeoutSec: 600 });
    const c = enqueue(ch);
    acd().dispatch(ch);
    acd().close(c, { agentId: a.id });
    expect(conv(c).state).toBe('wrapup');

    expect((await h.api('PATCH', `/api/channels/${ch}`, { handling: { completionCodeIds: [c2.id] } })).status).toBe(200);
    expect(conv(c).state).toBe('wrapup'); // the agent picks one of the new codes
    expect((await h.api('PATCH', `/api/channels/${ch}`, { handling: { completionCodeIds: [] } })).status).toBe(200);
    expect(conv(c)).toMatchObject({ state: 'closed', completionCodeId: null });
    expect(agentRow(a.id).load).toBe(0);
    expect(sql().prepare('SELECT reason FROM conversation_history WHERE conversation_id = ? ORDER BY id DESC LIMIT 1').pluck().get(c)).toBe('completion_codes_removed');
  });
});

describe('the ACD sweeper: timers and dispatches whose job never ran (Redis restarted empty)', () => {
  it('expires an offer and a wrap-up past their deadline, as their timers would, and only those', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    await online(b.id);
    const code = await json(await h.api('POST', '/api/completion-codes', { code: `sale-${newId('cc')}`, label: 'Sale' }));
    const offering = await channel([a.id], { utilization: 50, ...offers(30) });
    const wrapping = await channel([b.id], { utilization: 50, ...autoAnswer, completionCodeIds: [code.id], completionCodeTimeoutSec: 60 });
    const offered = enqueue(offering);
    acd().dispatch(offering);
    const wrapped = enqueue(wrapping);
    acd().dispatch(wrapping);
    acd().close(wrapped, { agentId: b.id });
    const sweeper = createAcdSweeper(h.deps, { graceMs: 5_000 });

    clock.advance(34_000); // the offer is 4 s overdue: still its timer's to apply
    expect(await sweeper.sweep()).toMatchObject({ offers: 0, wrapups: 0 });
    expect(conv(offered).state).toBe('offered');
    clock.advance(2_000);
    expect(await sweeper.sweep()).toMatchObject({ offers: 1, wrapups: 0 });
    expect(conv(offered)).toMatchObject({ state: 'queued', agentId: null });
    expect(agentRow(a.id)).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
    expect(acd().expireOffer(offered, 1)).toBe(false); // the timer, should it come after all

    clock.advance(30_000);
    expect(await sweeper.sweep()).toMatchObject({ offers: 0, wrapups: 1 });
    expect(conv(wrapped)).toMatchObject({ state: 'closed', completionCodeId: null });
    expect(agentRow(b.id).load).toBe(0);
    expect(await sweeper.sweep()).toMatchObject({ offers: 0, wrapups: 0 });
  });

  it('dispatches every channel that has a queue, once at start and then every dispatchEveryMs', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 10, ...autoAnswer });
    const c = enqueue(ch); // queued, and its dispatch job lost
    const sweeper = createAcdSweeper(h.deps, { dispatchEveryMs: 60_000 });
    expect(await sweeper.sweep()).toMatchObject({ assigned: 1 });
    expect(conv(c)).toMatchObject({ state: 'active', agentId: a.id });
    const d = enqueue(ch);
    expect(await sweeper.sweep()).toMatchObject({ assigned: 0 }); // not due yet
    expect(conv(d).state).toBe('queued');
    expect(await sweeper.sweep({ dispatch: true })).toMatchObject({ assigned: 1 });
    expect(conv(d)).toMatchObject({ state: 'active', agentId: a.id });
  });
});

describe('agent API on conversations', () => {
  it('refuses an agent acting on a conversation that is not theirs with 403 and records history', async () => {
    const a = await agent('Ana');
    const b = await agent('Bo');
    await online(a.id);
    const ch = await channel([a.id, b.id], { utilization: 10, ...offers() });
    const c = enqueue(ch);
    acd().dispatch(ch);
    for (const action of ['accept', 'reject', 'close']) {
      expect((await h.api('POST', `/api/conversations/${c}/${action}`, undefined, b.token)).status).toBe(403);
    }
    expect((await h.api('POST', `/api/conversations/${c}/close`, undefined, a.token)).status).toBe(409); // offered, not active
    expect((await h.api('POST', `/api/conversations/${c}/accept`, undefined, a.token)).status).toBe(200);
    expect((await h.api('POST', `/api/conversations/${c}/close`, undefined, a.token)).status).toBe(200);
    const history = (await json(await h.api('GET', `/api/conversations/${c}/history`))).data;
    expect(history.map((e: any) => `${e.from}->${e.to}:${e.reason}`)).toEqual([
      'queued->offered:offer',
      'offered->active:accepted',
      'active->closed:closed_by_agent',
    ]);
    expect(history[1]).toMatchObject({ agentId: a.id, at: expect.any(Number) });
  });

  it('shows live status, load and per-channel counts, and the queue with wait times', async () => {
    const a = await agent('Ana');
    await online(a.id);
    const ch = await channel([a.id], { utilization: 25, autoAssignLimit: 1, ...autoAnswer });
    enqueue(ch);
    const waiting = enqueue(ch);
    acd().dispatch(ch);
    clock.advance(5_000);
    const view = await json(await h.api('GET', `/api/agents/${a.id}`, undefined, a.token));
    expect(view).toMatchObject({ status: 'online', load: 25, channels: [{ channelId: ch, offered: 0, active: 1, wrapup: 0 }] });
    const q = await json(await h.api('GET', `/api/channels/${ch}/queue`));
    expect(q.data).toEqual([expect.objectContaining({ position: 1, conversationId: waiting, waitMs: 5_010 })]); // enqueue() ticks 10 ms
  });
});
