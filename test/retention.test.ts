import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInboundRetention } from '../src/ingest/retention.js';
import type { FakeClock } from '../src/lib/clock.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(async () => {
  await h.close();
});

describe('inbound event retention', () => {
  it('deletes the rows past the retention in batches, oldest first, and keeps the rest', async () => {
    const channel = await json(await h.api('POST', '/api/channels', channelBody()));
    const sqlite = h.deps.db.$client;
    const clock = h.clock as FakeClock;
    const insert = sqlite.prepare("INSERT INTO inbound_events (channel_id, dedupe_key, outcome, reason, received_at) VALUES (?, ?, 'processed', NULL, ?)");
    const now = clock.now();
    for (let i = 0; i < 10; i++) insert.run(channel.id, `update:${i}`, now - 3_000 + i); // older than 2 s
    for (let i = 10; i < 12; i++) insert.run(channel.id, `update:${i}`, now - 1_000); // younger
    sqlite.prepare("DELETE FROM inbound_events WHERE dedupe_key = 'update:4'").run(); // a gap in the ids

    const rows = () => sqlite.prepare('SELECT count(*) FROM inbound_events').pluck().get();
    const retention = createInboundRetention(sqlite, { clock, log: h.deps.log, keepMs: 2_000, batch: 3 });
    const sweep = retention.sweep();
    expect(rows()).toBe(8); // one statement of 3 ids ran; the next waits for a turn of the event loop
    expect(retention.sweep()).toBe(sweep); // one pass at a time
    expect(await sweep).toBe(9);
    expect(sqlite.prepare('SELECT dedupe_key FROM inbound_events ORDER BY id').pluck().all()).toEqual(['update:10', 'update:11']);

    clock.advance(1_001);
    expect(await retention.sweep()).toBe(2);
    expect(await retention.sweep()).toBe(0);
    await retention.stop();
  });

  it('runs a pass every interval once started, and stops', async () => {
    const channel = await json(await h.api('POST', '/api/channels', channelBody()));
    const sqlite = h.deps.db.$client;
    const clock = h.clock as FakeClock;
    const insert = sqlite.prepare("INSERT INTO inbound_events (channel_id, dedupe_key, outcome, reason, received_at) VALUES (?, NULL, 'ignored', 'x', ?)");
    const rows = () => sqlite.prepare('SELECT count(*) FROM inbound_events').pluck().get();
    const retention = createInboundRetention(sqlite, { clock, log: h.deps.log, keepMs: 1_000, intervalMs: 10 });
    insert.run(channel.id, clock.now() - 5_000);
    retention.start();
    while (rows() !== 0) await new Promise((r) => setTimeout(r, 5));
    await retention.stop();
    insert.run(channel.id, clock.now() - 5_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(rows()).toBe(1); // stopped: nothing more is deleted
  });
});
