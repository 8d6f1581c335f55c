import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../db/client.js';
import { relaxedSync } from '../db/relaxed-sync.js';
import type { WalSync } from '../db/wal-sync.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../log.js';
import { deliveryJobSpec } from './delivery-jobs.js';
import {
  JOB_DISPATCH,
  JOB_OFFER_TIMEOUT,
  JOB_WRAPUP_TIMEOUT,
  agentEventsChannel,
  dispatchDedupeId,
} from './names.js';
import type { OutboxItem } from './outbox.js';

/** Fails when any command of a pipeline failed: exec() itself resolves even with Redis unreachable. */
function throwIfAnyFailed(results: Array<[error: Error | null, result: unknown]> | null): void {
  if (!results) throw new Error('Redis pipeline was not run');
  const failed = results.find(([error]) => error);
  if (failed) throw failed[0]!;
}

/**
 * ACD jobs (dispatch, offer and wrap-up timers) that throw (the database busy past its timeout,
 * say) run again: 1 s, 2 s, 4 s … about 17 minutes in all. Each is a compare-and-set on the state
 * it was made for, so running one again changes nothing once it has done its work; without this, a
 * timer that failed once never fired, and its offer never expired.
 */
export const ACD_JOB_RETRIES = { attempts: 10, backoff: { type: 'exponential', delay: 1_000 } } as const;

/**
 * Moves committed outbox rows to BullMQ and Redis pub/sub. Rows are claimed with a lease (so two
 * processes on one database do not both hand them over), handed over in bulk, then deleted. When
 * Redis is down the rows stay and the relay retries with backoff: nothing committed is lost.
 */

export interface RelayTargets {
  acdQueue: Queue;
  deliveriesQueue: Queue;
  /** Publishes agent events (SSE fan-out across processes). */
  publisher: Redis;
  queuePrefix: string;
}

export interface OutboxRelay {
  /** Ask for a run soon (after a commit that wrote outbox rows). */
  notify(): void;
  /** Runs until the outbox is empty or Redis fails; resolves with how many rows moved. */
  drain(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

const LEASE_MS = 30_000;
const BATCH = 500;
const IDLE_POLL_MS = 1_000;
/** A notified run waits this long so one claim/delete pair covers many commits. */
const COALESCE_MS = 5;

export function createOutboxRelay(opts: {
  db: Db;
  clock: Clock;
  log: Logger;
  targets: RelayTargets;
  /**
   * Syncs the WAL (src/db/wal-sync.ts). Group-committed rows are visible before their WAL sync
   * returns, in this process and in any other on the same file, so a pass that claimed rows syncs
   * the WAL before it hands them over: nothing leaves for Redis that a power cut could still take
   * back from SQLite. Null (a database without a WAL file) hands over at once.
   */
  walSync: WalSync | null;
}): OutboxRelay {
  const { db, clock, log, targets, walSync } = opts;
  let pending = false;
  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  let loopDone: Promise<void> = Promise.resolve();
  let failures = 0;

  // Prepared once: id lists travel as one JSON array parameter, so the SQL text never changes
  // (drizzle's builder re-prepared an `IN (?, ?, …)` of a new length on every pass).
  const sqlite = db.$client;
  const q = {
    ack: sqlite.prepare('DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))'),
    due: sqlite.prepare('SELECT id, kind, payload FROM outbox WHERE claimed_until IS NULL OR claimed_until < ? ORDER BY id LIMIT ?'),
    lease: sqlite.prepare('UPDATE outbox SET claimed_until = ? WHERE id IN (SELECT value FROM json_each(?))'),
    release: sqlite.prepare('UPDATE outbox SET claimed_until = NULL WHERE id IN (SELECT value FROM json_each(?))'),
  };
  const claimPass = sqlite.transaction((handedOver: number[], now: number) => {
    if (handedOver.length > 0) q.ack.run(JSON.stringify(handedOver));
    const rows = q.due.all(now, BATCH) as Array<{ id: number; kind: OutboxItem['kind']; payload: string }>;
    if (rows.length > 0) q.lease.run(now + LEASE_MS, JSON.stringify(rows.map((r) => r.id)));
    return rows.map((r) => ({ id: r.id, kind: r.kind, payload: JSON.parse(r.payload) }) as { id: number } & OutboxItem);
  });

  // A pass's own writes (leases, deleting rows already handed over) need no fsync of their own: a
  // pass lost to a power cut only means those rows are handed over again, which consumers already
  // take (dispatch is deduplicated and idempotent, timer and delivery jobs have ids and check
  // their state, agent events are at-least-once). So a pass commits with synchronous = NORMAL
  // (in WAL mode that risks no corruption, only the pass itself) and the next durable commit's
  // fsync carries it. The setting is the connection's: it is put back before anything else runs.
  const relaxed = relaxedSync(sqlite);

  /**
   * One transaction per pass: deletes the rows handed over in the previous pass and leases the
   * next batch (so each pass costs one commit, not two).
   */
  function ackAndClaim(handedOver: number[]): Array<{ id: number } & OutboxItem> {
    return relaxed.run(() => claimPass.immediate(handedOver, clock.now()));
  }

  async function handOver(items: OutboxItem[]): Promise<void> {
    const now = clock.now();
    const acdJobs: Parameters<Queue['addBulk']>[0] = [];
    const deliveryJobs: Parameters<Queue['addBulk']>[0] = [];
    const seenDispatch = new Set<string>();
    const pipeline = targets.publisher.pipeline();
    let publishes = 0;
    for (const item of items) {
      switch (item.kind) {
        case 'dispatch': {
          const { channelId } = item.payload;
          if (seenDispatch.has(channelId)) break;
          seenDispatch.add(channelId);
          acdJobs.push({
            name: JOB_DISPATCH,
            data: { channelId },
            opts: { deduplication: { id: dispatchDedupeId(channelId) }, removeOnComplete: true, removeOnFail: 1000, ...ACD_JOB_RETRIES },
          });
          break;
        }
        case 'timer': {
          const p = item.payload;
          acdJobs.push({
            name: p.job === 'expire-offer' ? JOB_OFFER_TIMEOUT : JOB_WRAPUP_TIMEOUT,
            data: { conversationId: p.conversationId, seq: p.seq, runAt: p.runAt },
            opts: {
              jobId: `${p.job}-${p.conversationId}-${p.seq}`,
              delay: Math.max(0, p.runAt - now),
              removeOnComplete: true,
              removeOnFail: 1000,
              ...ACD_JOB_RETRIES,
            },
          });
          break;
        }
        case 'delivery':
          // jobId = deliveryJobId(deliveryId, cycle, attempt): one job per attempt (see delivery-jobs.ts).
          deliveryJobs.push(deliveryJobSpec(item.payload, now));
          break;
        case 'event':
          pipeline.publish(agentEventsChannel(targets.queuePrefix), JSON.stringify(item.payload));
          publishes++;
          break;
      }
    }
    const work: Promise<unknown>[] = [];
    if (acdJobs.length > 0) work.push(targets.acdQueue.addBulk(acdJobs));
    if (deliveryJobs.length > 0) work.push(targets.deliveriesQueue.addBulk(deliveryJobs));
    // exec() resolves even when Redis is unreachable, with an error per command: a publish that
    // did not go out must keep its rows, as a failed addBulk does.
    if (publishes > 0) work.push(pipeline.exec().then(throwIfAnyFailed));
    await Promise.all(work);
  }

  async function drain(): Promise<number> {
    let moved = 0;
    let handedOver: number[] = [];
    for (;;) {
      const rows = ackAndClaim(handedOver);
      handedOver = [];
      if (rows.length === 0) return moved;
      const ids = rows.map((r) => r.id);
      try {
        // Every row read above was in the WAL file before the read: one sync makes them all durable.
        if (walSync) await new Promise<void>((resolve, reject) => walSync.sync((err) => (err ? reject(err) : resolve())));
        await handOver(rows);
      } catch (err) {
        // Release the lease so the next run (here or in another process) retries at once.
        relaxed.run(() => q.release.run(JSON.stringify(ids)));
        throw err;
      }
      handedOver = ids;
      moved += rows.length;
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      pending = false;
      let delay = IDLE_POLL_MS;
      try {
        await drain();
        if (failures > 0) log.info({ failures }, 'outbox relay recovered');
        failures = 0;
      } catch (err) {
        failures++;
        // Capped low: an outage costs one claim every 5 s, and work flows within seconds of Redis returning.
        delay = Math.min(IDLE_POLL_MS * 2 ** Math.min(failures, 4), 5_000);
        if (failures === 1 || failures % 20 === 0) {
          log.warn({ err: (err as Error).message, failures }, 'outbox relay could not hand rows over (Redis unreachable, or the WAL sync failed); rows kept, retrying');
        }
      }
      if (stopped) break;
      // A commit that notified while we drained may have landed after our last claim.
      if (pending && failures === 0) {
        await new Promise((r) => setTimeout(r, COALESCE_MS));
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, delay);
      });
      wake = null;
    }
  }

  return {
    notify() {
      if (pending) return;
      pending = true;
      if (wake && failures === 0) {
        if (timer) clearTimeout(timer);
        const w = wake;
        timer = setTimeout(w, COALESCE_MS);
      }
    },
    drain,
    start() {
      if (!stopped) return;
      stopped = false;
      loopDone = loop();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      await loopDone;
    },
  };
}
