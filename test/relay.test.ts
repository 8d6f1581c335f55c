import { afterEach, describe, expect, it } from 'vitest';
import { createOutboxRelay } from '../src/queue/relay.js';
import { createHarness, gatedWalSync, type Harness } from './harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('outbox relay', () => {
  function setUp() {
    h = createHarness();
    const { db, clock, log, queues, redis, config, walSync } = h.deps;
    expect(walSync).not.toBeNull(); // the gateway's own relay gets the real one
    const gate = gatedWalSync(walSync!);
    const relay = createOutboxRelay({
      db,
      clock,
      log,
      targets: { acdQueue: queues.acd, deliveriesQueue: queues.deliveries, publisher: redis, queuePrefix: config.queuePrefix },
      walSync: gate.sync,
    });
    db.$client.prepare("INSERT INTO outbox (kind, payload, created_at) VALUES ('dispatch', ?, ?)").run(JSON.stringify({ channelId: 'ch_relay' }), clock.now());
    const leases = () => db.$client.prepare('SELECT claimed_until FROM outbox').pluck().all();
    return { gate, relay, queues, leases, db };
  }

  it('syncs the WAL before it hands claimed rows over: nothing reaches Redis that SQLite could still lose', async () => {
    const { gate, relay, queues, leases, db } = setUp();
    const drained = relay.drain();
    while (gate.inFlight() === 0) await new Promise((r) => setImmediate(r));
    expect(leases()).toEqual([expect.any(Number)]); // claimed…
    expect(await queues.acd.count()).toBe(0); // …but not handed over before the sync
    gate.open();
    await expect(drained).resolves.toBe(1);
    expect(db.$client.prepare('SELECT count(*) FROM outbox').pluck().get()).toBe(0);
    const jobs = await queues.acd.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed']);
    expect(jobs.map((j) => j.data)).toEqual([{ channelId: 'ch_relay' }]);
  });

  it('keeps the rows and releases their lease when the sync fails', async () => {
    const { gate, relay, queues, leases } = setUp();
    const drained = relay.drain();
    while (gate.inFlight() === 0) await new Promise((r) => setImmediate(r));
    gate.open(new Error('WAL sync failed: EIO'));
    await expect(drained).rejects.toThrow(/EIO/);
    expect(leases()).toEqual([null]); // the next pass, here or in another process, takes it
    expect(await queues.acd.count()).toBe(0);
  });
});
