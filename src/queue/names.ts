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

export function dispatchDedupeId(channelId: string): string {
  return `dispatch-${channelId}`;
}
