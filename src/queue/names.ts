/** Every queue and job name, in one place. Queue names are kebab-case without ':'. */
export const QUEUE_ACD = 'acd';
export const QUEUE_DELIVERIES = 'deliveries';

export const JOB_DISPATCH = 'dispatch';
export const JOB_OFFER_TIMEOUT = 'expire-offer';
export const JOB_WRAPUP_TIMEOUT = 'expire-wrapup';
export const JOB_DELIVER = 'deliver';

/** Redis pub/sub channel carrying agent events across processes. */
export function agentEventsChannel(prefix: string): string {
  return `${prefix}:agent-events`;
}

/**
 * Job id of one delivery attempt: `<deliveryId>-<cycle>-<attempt>` (cycle = the delivery's replay
 * count, attempt 1-based within it). BullMQ never re-adds a job whose id still exists, so each
 * attempt (and each replay) needs its own id; a duplicate add of the same attempt (outbox relay
 * and sweeper racing) is a no-op, and the worker skips a job that is not the delivery's next attempt.
 */
export function deliveryJobId(deliveryId: string, cycle: number, attempt: number): string {
  return `${deliveryId}-${cycle}-${attempt}`;
}

export function dispatchDedupeId(channelId: string): string {
  return `dispatch-${channelId}`;
}
