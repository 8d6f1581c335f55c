import type { Job, Worker } from 'bullmq';
import type { Deps } from '../deps.js';
import { JOB_DISPATCH, JOB_OFFER_TIMEOUT, JOB_WRAPUP_TIMEOUT, QUEUE_ACD } from '../queue/names.js';
import { newWorker } from '../queue/new-worker.js';

const ACD_CONCURRENCY = 4;
/** A delayed job may fire a little early; wait for its deadline rather than miss it. */
const MAX_EARLY_WAIT_MS = 10_000;

/** Runs per-channel dispatch and the offer / wrap-up timers of the `acd` queue. */
export function createAcdWorker(deps: Deps): Worker {
  const { acd } = deps.services;
  return newWorker(
    deps,
    QUEUE_ACD,
    async (job: Job) => {
      const log = deps.log.child({ jobId: job.id, job: job.name });
      switch (job.name) {
        case JOB_DISPATCH: {
          // Free the dedupe key first: a trigger arriving while we run must queue a new run.
          await job.removeDeduplicationKey().catch(() => false);
          const { channelId } = job.data as { channelId: string };
          const r = acd.dispatch(channelId);
          if (r.assigned > 0) log.debug({ channelId, assigned: r.assigned }, 'dispatched');
          return r;
        }
        case JOB_OFFER_TIMEOUT:
        case JOB_WRAPUP_TIMEOUT: {
          const { conversationId, seq, runAt } = job.data as { conversationId: string; seq: number; runAt?: number };
          const early = (runAt ?? 0) - deps.clock.now();
          if (early > 0) await new Promise((r) => setTimeout(r, Math.min(early + 5, MAX_EARLY_WAIT_MS)));
          const changed = job.name === JOB_OFFER_TIMEOUT ? acd.expireOffer(conversationId, seq) : acd.expireWrapup(conversationId, seq);
          log.debug({ conversationId, changed }, 'timer');
          return { changed };
        }
        default:
          log.warn('unknown acd job');
          return null;
      }
    },
    ACD_CONCURRENCY,
  );
}
