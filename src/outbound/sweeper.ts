import type { Deps } from '../deps.js';
import { createPeriodic } from '../lib/periodic.js';
import type { Logger } from '../log.js';
import { deliveryJobSpec } from '../queue/delivery-jobs.js';
import { deliveryJobId } from '../queue/names.js';

/**
 * Re-queues committed deliveries that have no job: never handed to the queue (a crash between
 * commit and enqueue, `enqueuedAt` null), or due for a while with no job in Redis (Redis lost
 * it, or the job failed on an infrastructure error). Runs at start and every `intervalMs`.
 * Adding is idempotent: the job id is deterministic, BullMQ ignores an id that exists, and the
 * worker skips a job that is no longer the delivery's next attempt.
 */

export interface SweeperOptions {
  /** Default 5 s. */
  intervalMs?: number | undefined;
  /** A due delivery's job must be missing for this long before it is re-queued. Default 10 s. */
  graceMs?: number | undefined;
  /** Deliveries examined per pass. Default 500. */
  batch?: number | undefined;
  log?: Logger | undefined;
  /** Deliveries this process is sending right now (their job may be gone from Redis but is not lost). */
  inFlight?: ReadonlySet<string> | undefined;
}

export interface Sweeper {
  /** One pass; resolves with how many deliveries were re-queued. */
  sweep(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createSweeper(deps: Pick<Deps, 'services' | 'queues' | 'redis' | 'clock' | 'log'>, opts: SweeperOptions = {}): Sweeper {
  const intervalMs = opts.intervalMs ?? 5_000;
  const graceMs = opts.graceMs ?? 10_000;
  const batch = opts.batch ?? 500;
  const log = opts.log ?? deps.log;
  const queue = deps.queues.deliveries;

  async function sweepOnce(): Promise<number> {
    const now = deps.clock.now();
    const candidates = deps.services.outbound.sweepCandidates(now, graceMs, batch);
    if (candidates.length === 0) return 0;
    const jobs = candidates.map((c) => ({
      c,
      jobId: deliveryJobId(c.id, c.replays, c.attempts + 1),
    }));
    const pipeline = deps.redis.pipeline();
    for (const j of jobs) pipeline.exists(queue.toKey(j.jobId));
    const exists = (await pipeline.exec()) ?? [];
    const missing = jobs.filter((j, i) => (j.c.enqueuedAt === null || exists[i]?.[1] === 0) && !opts.inFlight?.has(j.c.id));
    if (missing.length === 0) return 0;
    await queue.addBulk(
      missing.map(({ c }) =>
        deliveryJobSpec({ deliveryId: c.id, cycle: c.replays, attempt: c.attempts + 1, runAt: c.nextAttemptAt ?? now }, now),
      ),
    );
    deps.services.outbound.markEnqueued(
      missing.map((m) => m.c.id),
      now,
    );
    log.info({ requeued: missing.length, deliveryIds: missing.slice(0, 20).map((m) => m.c.id) }, 'sweeper re-queued deliveries that had no job');
    return missing.length;
  }

  const periodic = createPeriodic(sweepOnce, { intervalMs, log, what: 'delivery sweeper' });
  return { sweep: periodic.run, start: periodic.start, stop: periodic.stop };
}
