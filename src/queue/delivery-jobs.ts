import { z } from 'zod';
import { JOB_DELIVER, deliveryJobId } from './names.js';
import type { DeliveryJobRequest } from './outbox.js';

/**
 * Delivery jobs on the `deliveries` queue. One job per attempt, id `deliveryJobId(…)`; completed
 * and failed jobs are removed at once, so the id space never blocks a later attempt. Delivery
 * retries are ours (state in SQLite, next job through the outbox), not BullMQ's: a job runs once.
 */

export const deliveryJobDataSchema = z.object({
  deliveryId: z.string().min(1),
  cycle: z.number().int().min(0),
  attempt: z.number().int().min(1),
});
export type DeliveryJobData = z.infer<typeof deliveryJobDataSchema>;

/** The BullMQ add() arguments for one attempt; shared by the outbox relay and the sweeper. */
export function deliveryJobSpec(req: DeliveryJobRequest, now: number) {
  const data: DeliveryJobData = { deliveryId: req.deliveryId, cycle: req.cycle, attempt: req.attempt };
  return {
    name: JOB_DELIVER,
    data,
    opts: {
      jobId: deliveryJobId(req.deliveryId, req.cycle, req.attempt),
      delay: Math.max(0, req.runAt - now),
      removeOnComplete: true,
      removeOnFail: true,
    },
  };
}
