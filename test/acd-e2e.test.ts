import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/lib/clock.js';
import { startWorkers, type Workers } from '../src/queue/workers.js';
import { channelBody, createHarness, json, postSignedWaba, wabaTextBody, type Harness } from './harness.js';
import { SseReader } from './sse.js';

/** End to end: webhook → outbox → BullMQ → ACD worker → offer over SSE, with real Redis and real 1 s timers. */

let h: Harness | null = null;
let workers: Workers | null = null;
let sse: SseReader | null = null;
afterEach(async () => {
  await sse?.close();
  await workers?.close();
  await h?.close();
  h = null;
  workers = null;
  sse = null;
});

const SECRET = 'e2e-app-secret';

async function postText(harness: Harness, webhookUrl: string, id: string, from: string, phoneNumberId: string) {
  const res = await postSignedWaba(harness, webhookUrl, SECRET, wabaTextBody(id, from, phoneNumberId));
  expect(res.status).toBe(200);
}

describe('ACD end to end', () => {
  it('offers over SSE, times out to not_responding, re-offers, accepts, and wraps up on a timer', async () => {
    h = createHarness({ clock: systemClock });
    h.deps.relay.start();
    workers = startWorkers(h.deps);
    const agent = await json(await h.api('POST', '/api/agents', { name: 'Ana', email: 'ana@example.com' }));
    const code = await json(await h.api('POST', '/api/completion-codes', { code: 'done', label: 'Done' }));
    const ch = await json(
      await h.api('POST', '/api/channels', channelBody({
        messenger: { provider: 'whatsapp_business', phoneNumberId: '3001', accessToken: 't', appSecret: SECRET, verifyToken: 'v' },
        agentIds: [agent.id],
        handling: { utilization: 50, autoAssignLimit: 2, autoAnswer: false, notificationTimeoutSec: 1, completionCodeIds: [code.id], completionCodeTimeoutSec: 1 },
      })),
    );
    await h.api('PUT', `/api/agents/${agent.id}/status`, { status: 'online' }, agent.token);
    const stream = await h.app.request(`/api/agents/${agent.id}/events`, { headers: { Authorization: `Bearer ${agent.token}` } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    sse = new SseReader(stream);
    await sse.next('ready');

    await postText(h, ch.webhookUrl, 'wamid.E2E1', '4915100000001', '3001');
    const offer = await sse.next('offer');
    const conversationId = offer.data.conversationId as string;
    expect(offer.data).toMatchObject({ channelId: ch.id, expiresAt: expect.any(Number) });

    // Nobody answers: after 1 s the offer times out.
    await sse.next('offer-timeout', 5_000);
    const afterTimeout = await json(await h.api('GET', `/api/agents/${agent.id}`));
    expect(afterTimeout).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
    expect((await h.api('POST', `/api/conversations/${conversationId}/accept`, undefined, agent.token)).status).toBe(409);

    // Back online: offered again, accepted this time.
    await h.api('PUT', `/api/agents/${agent.id}/status`, { status: 'online' }, agent.token);
    const again = await sse.next('offer');
    expect(again.data.conversationId).toBe(conversationId);
    expect((await h.api('POST', `/api/conversations/${conversationId}/accept`, undefined, agent.token)).status).toBe(200);
    await sse.next('assigned');

    // Close: wrap-up holds the load, then its 1 s timer closes it with no code.
    const closed = await json(await h.api('POST', `/api/conversations/${conversationId}/close`, undefined, agent.token));
    expect(closed.state).toBe('wrapup');
    expect((await json(await h.api('GET', `/api/agents/${agent.id}`))).load).toBe(50);
    await sse.next('wrapup-timeout', 5_000);
    const conv = await json(await h.api('GET', `/api/conversations/${conversationId}`));
    expect(conv).toMatchObject({ state: 'closed', completionCodeId: null });
    expect((await json(await h.api('GET', `/api/agents/${agent.id}`))).load).toBe(0);
    const history = (await json(await h.api('GET', `/api/conversations/${conversationId}/history`))).data.map((e: any) => e.reason);
    expect(history).toEqual(['inbound_message', 'offer', 'offer_timeout', 'offer', 'accepted', 'closed_by_agent', 'wrapup_timeout']);
  });

  it('runs a timer again when it fails: the offer still expires', async () => {
    const harness = createHarness({ clock: systemClock });
    h = harness;
    harness.deps.relay.start();
    workers = startWorkers(harness.deps);
    const sqlite = harness.deps.db.$client;
    // The first run of the offer timeout fails inside its transaction, as a database busy past its
    // timeout would; later runs go through.
    sqlite.exec(`CREATE TABLE fail_timeout (armed INTEGER NOT NULL); INSERT INTO fail_timeout VALUES (1);
      CREATE TRIGGER fail_timeout_once BEFORE UPDATE OF state ON conversations
      WHEN OLD.state = 'offered' AND NEW.state = 'queued' AND (SELECT armed FROM fail_timeout) = 1
      BEGIN SELECT RAISE(ABORT, 'injected failure'); END;`);
    const agent = await json(await harness.api('POST', '/api/agents', { name: 'Ana', email: 'ana-retry@example.com' }));
    const ch = await json(
      await harness.api('POST', '/api/channels', channelBody({
        messenger: { provider: 'whatsapp_business', phoneNumberId: '3002', accessToken: 't', appSecret: SECRET, verifyToken: 'v' },
        agentIds: [agent.id],
        handling: { utilization: 50, autoAssignLimit: 2, autoAnswer: false, notificationTimeoutSec: 1, completionCodeIds: [], completionCodeTimeoutSec: null },
      })),
    );
    await harness.api('PUT', `/api/agents/${agent.id}/status`, { status: 'online' }, agent.token);
    await postText(harness, ch.webhookUrl, 'wamid.RETRY1', '4915100000002', '3002');
    const conv = async () => (await json(await harness.api('GET', `/api/conversations?channelId=${ch.id}`))).data[0];
    for (let i = 0; i < 100 && (await conv())?.state !== 'offered'; i++) await new Promise((r) => setTimeout(r, 50));
    const { id: conversationId } = await conv();

    const timer = () => harness.deps.queues.acd.getJob(`expire-offer-${conversationId}-1`);
    for (let i = 0; i < 100 && ((await timer())?.attemptsMade ?? 0) < 1; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await timer())?.failedReason).toMatch(/injected failure/);
    expect((await conv()).state).toBe('offered'); // the failed run changed nothing
    sqlite.exec('UPDATE fail_timeout SET armed = 0');

    for (let i = 0; i < 100 && (await conv()).state === 'offered'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await conv()).toMatchObject({ state: 'queued', agentId: null });
    expect(await json(await harness.api('GET', `/api/agents/${agent.id}`))).toMatchObject({ status: 'busy', substatus: 'not_responding', load: 0 });
  });

  it('ends open event streams when the Redis subscription drops, and serves new ones once it is back', async () => {
    const harness = createHarness({ clock: systemClock });
    h = harness;
    harness.deps.relay.start();
    const agent = await json(await harness.api('POST', '/api/agents', { name: 'Ana', email: 'ana-sub@example.com' }));
    const open = async () => {
      const res = await harness.app.request(`/api/agents/${agent.id}/events`, { headers: { Authorization: `Bearer ${agent.token}` } });
      const reader = new SseReader(res);
      await reader.next('ready');
      return reader;
    };
    sse = await open();
    await harness.api('PUT', `/api/agents/${agent.id}/status`, { status: 'online' }, agent.token);
    expect((await sse.next('status')).data).toMatchObject({ status: 'online' });

    // Cut the gateway's subscriber connection, as a Redis restart or failover would.
    const name = `${harness.config.queuePrefix}:agent-events`;
    const line = ((await harness.deps.redis.client('LIST')) as string).split('\n').find((l) => l.includes(` name=${name} `));
    expect(line).toBeTruthy();
    await harness.deps.redis.client('KILL', 'ID', /\bid=(\d+)/.exec(line!)![1]!);
    // Events published while it was away are gone, so the stream says so and ends: the client
    // reconnects and reads the current state, instead of waiting for an event that never comes.
    expect((await sse.next('end', 5_000)).data).toEqual({ reason: 'subscription lost' });
    await sse.close();
    sse = await open(); // 'ready' only once subscribed again
    await harness.api('PUT', `/api/agents/${agent.id}/status`, { status: 'busy' }, agent.token);
    expect((await sse.next('status', 5_000)).data).toMatchObject({ status: 'busy' });
  });
});
