import { afterEach, describe, expect, it } from 'vitest';
import { createOutboxRelay } from '../src/queue/relay.js';
import { createHarness, type Harness } from './harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('outbox relay', () => {
  it('hands over nothing before whenDurable() says the rows are on disk', async () => {
    h = createHarness();
    const { db, clock, log, queues, redis, config } = h.deps;
    let markDurable: () => void = () => {};
    const durable = new Promise<void>((r) => (markDurable = r));
    let asked = 0;
    const relay = createOutboxRelay({
      db,
      clock,
      log,
      targets: { acdQueue: queues.acd, deliveriesQueue: queues.deliveries, publisher: redis, queuePrefix: config.queuePrefix },
      whenDurable: () => (asked++, durable),
    });
    db.$client.prepare("INSERT INTO outbox (kind, payload, created_at) VALUES ('dispatch', ?, ?)").run(JSON.stringify({ channelId: 'ch_relay' }), clock.now());

    const drained = relay.drain();
    await new Promise((r) => setTimeout(r, 50));
    expect(asked).toBe(1);
    expect(db.$client.prepare('SELECT claimed_until FROM outbox').pluck().all()).toEqual([null]); // not even leased
    expect(await queues.acd.count()).toBe(0);

    markDurable();
    await expect(drained).resolves.toBe(1);
    expect(db.$client.prepare('SELECT count(*) FROM outbox').pluck().get()).toBe(0);
    const jobs = await queues.acd.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed']);
    expect(jobs.map((j) => j.data)).toEqual([{ channelId: 'ch_relay' }]);
  });
});
