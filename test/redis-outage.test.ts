import { afterEach, describe, expect, it } from 'vitest';
import { channelBody, createHarness, json, postSignedWaba, wabaTextBody, type Harness } from './harness.js';
import { ownRedis, type OwnRedis } from './redis-server.js';

let h: Harness | null = null;
let redis: OwnRedis | null = null;
afterEach(async () => {
  await redis?.start().catch(() => {});
  await h?.close();
  await redis?.dispose();
  h = null;
  redis = null;
});


const wabaText = (id: string, from: string) => wabaTextBody(id, from, '2001');

describe('Redis outage', () => {
  it('keeps accepting and storing webhooks while Redis is down; queued work flows once it returns', async () => {
    redis = await ownRedis();
    await redis.start();
    h = createHarness({ env: { REDIS_URL: redis.url } });
    h.deps.relay.start();
    const ch = await json(await h.api('POST', '/api/channels', channelBody({
      messenger: { provider: 'whatsapp_business', phoneNumberId: '2001', accessToken: 't', appSecret: 's3cret', verifyToken: 'v' },
    })));
    const post = (body: string) => postSignedWaba(h!, ch.webhookUrl, 's3cret', body);

    await redis.stop();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await post(wabaText(`wamid.D${i}`, `4915100000${i}`))).status);
    expect(statuses).toEqual(Array(10).fill(200));
    const outboxRows = () => h!.deps.db.$client.prepare("SELECT count(*) FROM outbox WHERE kind = 'dispatch'").pluck().get() as number;
    expect(h.deps.db.$client.prepare('SELECT count(*) FROM messages').pluck().get()).toBe(10);
    expect(outboxRows()).toBeGreaterThan(0);
    expect((await h.app.request('/readyz')).status).toBe(503);

    await redis.start();
    const deadline = Date.now() + 20_000;
    while (outboxRows() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(outboxRows()).toBe(0);
    // Relay passes (failed ones during the outage, then the ones that moved the rows) commit
    // without an fsync of their own; the connection is back on FULL for every other commit.
    expect(h.deps.db.$client.pragma('synchronous', { simple: true })).toBe(2);
    const counts = await h.deps.queues.acd.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('keeps agent events in the outbox while Redis is down, and publishes them once it returns', async () => {
    redis = await ownRedis();
    await redis.start();
    h = createHarness({ env: { REDIS_URL: redis.url } });
    const agent = await json(await h.api('POST', '/api/agents', { name: 'Ana', email: 'ana-outage@example.com' }));
    const events = () => h!.deps.db.$client.prepare("SELECT count(*) FROM outbox WHERE kind = 'event'").pluck().get() as number;
    await redis.stop();
    for (const status of ['online', 'busy', 'online']) {
      expect((await h.api('PUT', `/api/agents/${agent.id}/status`, { status })).status).toBe(200);
    }
    const before = events();
    expect(before).toBeGreaterThanOrEqual(3);
    await expect(h.deps.relay.drain()).rejects.toThrow();
    expect(events()).toBe(before); // not handed over, so not deleted

    await redis.start();
    const heard: string[] = [];
    const listener = h.deps.events.subscribe(agent.id, (e) => heard.push(`${e.event}:${String(e.data.status)}`));
    await listener.ready;
    const deadline = Date.now() + 10_000;
    while (events() > 0 && Date.now() < deadline) {
      await h.deps.relay.drain().catch(() => 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(events()).toBe(0);
    while (heard.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(heard).toEqual(['status:online', 'status:busy', 'status:online']);
    listener.unsubscribe();
  });
});
