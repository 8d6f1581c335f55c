/**
 * Retry policy of a delivery (DESIGN.md §3): the first try, then one more per entry of the
 * schedule (`DELIVERY_RETRY_SCHEDULE`), each delay plus up to 10% jitter; a provider's
 * Retry-After / retry_after wins when it asks for longer, up to a day. Pure: randomness is an argument.
 */

export const RETRY_JITTER = 0.1;

/**
 * The longest a provider's Retry-After / retry_after is waited (a day). Past it the attempt runs
 * anyway: a delivery asked to wait 10^20 seconds would otherwise sit in `retrying` for good,
 * never reaching `dead`, where ops look for what failed.
 */
export const MAX_PROVIDER_WAIT_MS = 86_400_000;

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
  return retryAfterMs !== undefined && retryAfterMs > jittered ? Math.min(retryAfterMs, Math.max(MAX_PROVIDER_WAIT_MS, jittered)) : jittered;
}
