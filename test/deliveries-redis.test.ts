import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { json } from './harness.js';
import { ownRedis, type OwnRedis } from './redis-server.js';
import {
  activeConversation,
  createAgent,
  createChannel,
  outboundHarness,
  startFakes,
  waitFor,
  type Fakes,
  type OutboundHarness,
} from './outbound-helpers.js';

/** Deliveries survive Redis going away mid-delivery: SQLite holds the truth, the outbox and the sweeper refill Redis. */

let fakes: Fakes;
let h: OutboundHarness | null = null;
let redis: OwnRedis | null = null;
beforeAll(async () => {
  fakes = await startFakes();
});
afterAll(async () => {
  await fakes.close();
});
afterEach(async () => {
  await redis?.start().catch(() => {});
  await h?.close();
  await redis?.dispose();
  h = null;
  redis = null;
  fakes.reset();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scenario(opts: { loseData: boolean }) {
  redis = await ownRedis();
  await redis.start();
  h = outboundHarness(fakes, { REDIS_URL: redis.url, DELIVERY_RETRY_SCHEDULE: '200ms,200ms,200ms,200ms' });
  const agent = await createAgent(h);
  const ch = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
  const { conversationId } = await activeConversation(h, ch, agent.id, 'crm-redis');
  const send = async (i: number) => {
    const res = await h!.api('POST', `/api/conversations/${conversationId}/messages`, { text: `m${i}` }, agent.token);
    expect(res.status).toBe(202);
    return (await json(res)).deliveryId as string;
  };

  // Slow receiver, and a few 500s so some deliveries are retrying when Redis goes.
  fakes.callback.setDefault({ delayMs: 150 });
  fakes.callback.script([{ status: 500 }, { status: 500 }, { status: 503 }]);
  h.startWorker({ concurrency: 4, sweepIntervalMs: 200, sweepGraceMs: 500 });
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => send(i)));

  const sentCount = () => h!.sql.prepare("SELECT count(*) FROM deliveries WHERE status = 'sent'").pluck().get() as number;
  await waitFor('some deliveries to be sent', () => sentCount() >= 3);
  expect(sentCount()).toBeLessThan(20);

  if (opts.loseData) {
    const admin = new Redis(redis.url);
    await admin.flushall();
    admin.disconnect();
  }
  await redis.stop();
  // While Redis is down, agents still get 202 and their messages are committed.
  const during = await Promise.all(Array.from({ length: 5 }, (_, i) => send(100 + i)));
  await sleep(800);
  await redis.start();

  const all = [...ids, ...during];
  await waitFor(
    'every delivery to be sent',
    () => sentCount() === all.length,
    30_000,
  );
  const received = fakes.callback.requests.filter((r) => r.status === 200).map((r) => r.headers['webhook-id']!);
  expect(new Set(received)).toEqual(new Set(all));
  // No delivery reached the receiver twice.
  expect(received).toHaveLength(all.length);
  const messages = h.sql.prepare("SELECT status, count(*) AS n FROM messages WHERE direction = 'out' GROUP BY status").all();
  expect(messages).toEqual([{ status: 'sent', n: all.length }]);
  if (opts.loseData) expect(h.logs.text).toContain('sweeper re-queued deliveries that had no job');
}

describe('Redis outage mid-delivery', () => {
  it('a Redis restart mid-delivery loses nothing and sends nothing twice', async () => {
    await scenario({ loseData: false });
  });

  it('even when Redis comes back empty, the sweeper re-queues every committed delivery', async () => {
    await scenario({ loseData: true });
  });
});
