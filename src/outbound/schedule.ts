/**
 * Retry policy of a delivery (DESIGN.md §3): the first try, then one more per entry of the
 * schedule (`DELIVERY_RETRY_SCHEDULE`), each delay plus up to 10% jitter; a provider's
 * Retry-After / retry_after wins when it asks for longer. Pure: randomness is an argument.
 */

export const RETRY_JITTER = 0.1;

/** How many attempts a cycle has: the first try plus one per scheduled delay. */
export function maxAttempts(schedule: readonly number[]): number {
  return schedule.length + 1;
}

/**
 * Delay in ms before the next attempt after attempt `attempt` (1-based) failed retryably, or null
 * when that was the last one.
 */
export function nextRetryDelay(
  schedule: readonly number[],
  attempt: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | null {
  const base = schedule[attempt - 1];
  if (base === undefined) return null;
  const jittered = Math.round(base * (1 + RETRY_JITTER * random()));
  return retryAfterMs !== undefined && retryAfterMs > jittered ? retryAfterMs : jittered;
}
