import { Worker, type Job } from 'bullmq';
import { createRedis, type Deps } from '../deps.js';

export type Processor = (job: Job) => Promise<unknown>;

/** A BullMQ worker on its own blocking Redis connection, logging failures without secrets. */
export function newWorker(deps: Deps, queue: string, processor: Processor, concurrency: number): Worker {
  const connection = createRedis(deps.config.redisUrl, { failFast: false });
  const worker = new Worker(queue, processor, {
    connection,
    prefix: deps.config.queuePrefix,
    concurrency,
  });
  // BullMQ does not close a connection it was given.
  worker.on('closed', () => connection.disconnect());
  worker.on('error', (err) => deps.log.warn({ err: err.message, queue }, 'worker error'));
  worker.on('failed', (job, err) => deps.log.warn({ jobId: job?.id, queue, err: err.message }, 'job failed'));
  return worker;
}
