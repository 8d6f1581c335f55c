import { DelayedError, Worker, type Job } from 'bullmq';
import { createRedis, type Deps } from '../deps.js';
import { providerFor } from '../providers/registry.js';
import type { ProviderName, SendResult } from '../providers/types.js';
import { deliveryJobDataSchema } from '../queue/delivery-jobs.js';
import { QUEUE_DELIVERIES } from '../queue/names.js';
import { createRateLimiter, pauseKeys, rateLimitsFor } from './rate-limit.js';
import { createSweeper, type Sweeper } from './sweeper.js';

/**
 * The `deliveries` queue worker: one job = one attempt of one delivery (DESIGN.md §3).
 * Per job: load the delivery (a job for a delivery already sent/dead, or a stale one, does
 * nothing) → take a token from the sender's rate-limit buckets (when limited the job is moved
 * back to delayed: no attempt is counted) → call the provider through `deps.fetch` → record the
 * attempt and the next step in one transaction (see store.ts). Runs the sweeper beside it.
 */

/** Meta's throughput errors (PROTOCOLS.md §1.7: 130429 rate limit hit, 80007 and 4 throttling). */
const WABA_THROUGHPUT_CODES = new Set(['4', '80007', '130429']);
const MIN_PAUSE_MS = 1_000;
const MAX_PAUSE_MS = 60_000;

/**
 * The pause a provider's answer calls for, or null (see pauseKeys for where each applies):
 * WhatsApp Business by Meta's code alone (PROTOCOLS.md §0: branch on the code; a pair rate limit,
 * 131056, may come as HTTP 429 and is one recipient's, whose messages wait for each other anyway);
 * the others on an HTTP 429, for its Retry-After / retry_after, 1 s to 60 s.
 */
export function pauseFor(provider: ProviderName, result: SendResult): { scope: 'sender' | 'chat'; ms: number } | null {
  if (result.ok) return null;
  const limited = provider === 'whatsapp_business' ? WABA_THROUGHPUT_CODES.has(result.code) : result.httpStatus === 429;
  if (!limited) return null;
  const ms = Math.min(MAX_PAUSE_MS, Math.max(MIN_PAUSE_MS, result.retryAfterMs ?? MIN_PAUSE_MS));
  return { scope: provider === 'telegram' || provider === 'whatsapp' ? 'chat' : 'sender', ms };
}

export interface DeliveryWorkerOptions {
  /** Jobs in flight at once; sends are I/O-bound (most of a job is waiting on the provider). Default 256. */
  concurrency?: number;
  /** Give up on a provider call after this long (counts as a retryable timeout). Default 15 s. */
  sendTimeoutMs?: number;
  sweepIntervalMs?: number;
  sweepGraceMs?: number;
}

export interface DeliveryWorker {
  worker: Worker;
  sweeper: Sweeper;
  close(): Promise<void>;
}

export function startDeliveryWorker(deps: Deps, opts: DeliveryWorkerOptions = {}): DeliveryWorker {
  const log = deps.log.child({ component: 'deliveries' });
  const { outbound } = deps.services;
  const { config } = deps;
  const sendTimeoutMs = opts.sendTimeoutMs ?? 15_000;
  // Workers block on Redis and must wait out an outage rather than fail: their own connection.
  const connection = createRedis(config.redisUrl, { failFast: false });
  connection.on('error', () => {});
  const limiter = createRateLimiter(connection, config.queuePrefix);
  const inFlight = new Set<string>();

  async function processDelivery(job: Job, token?: string): Promise<void> {
    const data = deliveryJobDataSchema.parse(job.data);
    const plan = outbound.planAttempt(data);
    if (plan.kind === 'skip') {
      log.debug({ jobId: job.id, deliveryId: data.deliveryId, reason: plan.reason }, 'delivery job skipped');
      return;
    }
    let result: SendResult;
    let at = deps.clock.now();
    let started = performance.now();
    let channelId: string | undefined;
    let pauses: { sender: string; chat: string } | undefined;
    if (plan.kind === 'fail') {
      result = { ok: false, retryable: false, code: plan.code, message: plan.error };
    } else {
      channelId = plan.channelId;
      pauses = pauseKeys(plan.channelId, plan.messenger, plan.message.to);
      const wait = await limiter.take(rateLimitsFor(plan.channelId, plan.messenger, plan.message.to), [pauses.sender, pauses.chat]);
      if (wait > 0) {
        // Spread the waiters so they do not all come back in the same millisecond (by up to a
        // second: a minute's pause is not doubled).
        await job.moveToDelayed(Date.now() + wait + Math.floor(Math.random() * Math.min(wait, 1_000)), token);
        throw new DelayedError();
      }
      at = deps.clock.now();
      // Held in the database for as long as the call may take and then some: a replay meanwhile
      // is refused (it would send a second copy), and no sweeper, in any process, re-queues it.
      if (!(await outbound.claimAttempt(data, at, sendTimeoutMs * 2))) {
        log.debug({ jobId: job.id, deliveryId: data.deliveryId }, 'delivery job skipped: the attempt was replayed or is held by another worker');
        return;
      }
      started = performance.now();
      inFlight.add(data.deliveryId);
      try {
        result = await providerFor(plan.messenger).send(plan.messenger, plan.message, {
          fetch: deps.fetch,
          graphApiBaseUrl: config.graphApiBaseUrl,
          telegramApiBaseUrl: config.telegramApiBaseUrl,
          now: at,
          timeoutMs: sendTimeoutMs,
          mac: deps.mac,
        });
      } catch (err) {
        inFlight.delete(data.deliveryId);
        throw err;
      }
    }
    const durationMs = Math.round(performance.now() - started);
    const pause = plan.kind === 'send' ? pauseFor(plan.messenger.provider, result) : null;
    if (pause !== null && pauses !== undefined) {
      // Every process holds those messages for a while, not only this one (see RateLimiter.pause).
      await limiter.pause(pauses[pause.scope], pause.ms).catch((err: Error) => log.warn({ err: err.message, channelId }, 'could not pause sending'));
      log.warn({ channelId, code: result.ok ? undefined : result.code, scope: pause.scope, pauseMs: pause.ms }, 'provider says to slow down; messages wait');
    }
    let recorded: Awaited<ReturnType<typeof outbound.recordAttempt>>;
    try {
      recorded = await outbound.recordAttempt(data, result, { at, durationMs });
    } finally {
      inFlight.delete(data.deliveryId);
    }
    const line = {
      jobId: job.id,
      deliveryId: data.deliveryId,
      channelId,
      cycle: data.cycle,
      attempt: data.attempt,
      outcome: recorded.outcome,
      httpStatus: result.httpStatus,
      code: result.ok ? undefined : result.code,
      nextAttemptAt: recorded.nextAttemptAt,
      ms: durationMs,
    };
    if (recorded.outcome === 'dead' || recorded.outcome === 'retrying') log.warn(line, 'delivery attempt failed');
    else log.info(line, 'delivery attempt');
  }

  const worker = new Worker(QUEUE_DELIVERIES, processDelivery, {
    connection,
    prefix: config.queuePrefix,
    concurrency: opts.concurrency ?? 256,
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'delivery worker error'));
  // A job that throws (database busy, Redis gone mid-job) is removed; the sweeper re-queues its delivery.
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, err: err.message }, 'delivery job failed; the sweeper will re-queue it'));

  const sweeper = createSweeper(deps, {
    intervalMs: opts.sweepIntervalMs,
    graceMs: opts.sweepGraceMs,
    log,
    inFlight,
  });
  sweeper.start();

  return {
    worker,
    sweeper,
    async close() {
      await sweeper.stop();
      // Waits for the jobs in progress to finish (their results are committed).
      await worker.close();
      connection.disconnect();
    },
  };
}
