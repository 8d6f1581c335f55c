import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';
import { ownRedis, type OwnRedis } from './redis-server.js';

let h: Harness | null = null;
let redis: OwnRedis | null = null;
afterEach(async () => {
  await redis?.start().catch(() => {});
  await h?.close();
  await redis?.stop();
  h = null;
  redis = null;
});

function textPayload(id: string, from: string) {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '1', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '1555', phone_number_id: '2001' },
      contacts: [{ profile: { name: 'Ana' }, wa_id: from }],
      messages: [{ from, id, timestamp: '1767225600', type: 'text', text: { body: 'hi' } }],
    } }] }],
  });
}

describe('Redis outage', () => {
  it('keeps accepting and storing webhooks while Redis is down; queued work flows once it returns', async () => {
    redis = await ownRedis();
    await redis.start();
    h = createHarness({ env: { REDIS_URL: redis.url } });
    h.deps.relay.start();
    const ch = await json(await h.api('POST', '/api/channels', channelBody({
      messenger: { provider: 'whatsapp_business', phoneNumberId: '2001', accessToken: 't', appSecret: 's3cret', verifyToken: 'v' },
    })));
    const post = async (body: string) =>
      h!.app.request(new URL(ch.webhookUrl).pathname, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', 's3cret', body))}` },
        body,
      });

    await redis.stop();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await post(textPayload(`wamid.D${i}`, `4915100000${i}`))).status);
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
});
