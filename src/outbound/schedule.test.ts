import { describe, expect, it } from 'vitest';
import { MAX_PROVIDER_WAIT_MS, maxAttempts, nextRetryDelay } from './schedule.js';

const schedule = [5_000, 30_000, 120_000];

describe('nextRetryDelay', () => {
  it.each([
    [1, 0, 5_000],
    [1, 0.999_999, 5_500],
    [2, 0.5, 31_500],
    [3, 0, 120_000],
  ])('after attempt %i with random %f waits %i ms', (attempt, r, expected) => {
    expect(nextRetryDelay(schedule, attempt, undefined, () => r)).toBe(expected);
  });

  it('stops after the last scheduled delay', () => {
    expect(maxAttempts(schedule)).toBe(4);
    expect(nextRetryDelay(schedule, 4, undefined, () => 0)).toBeNull();
    expect(nextRetryDelay(schedule, 4, 1_000, () => 0)).toBeNull();
  });

  it('honours a longer Retry-After, never a shorter one', () => {
    expect(nextRetryDelay(schedule, 1, 60_000, () => 0)).toBe(60_000);
    expect(nextRetryDelay(schedule, 1, 1_000, () => 0)).toBe(5_000);
    expect(nextRetryDelay(schedule, 1, 0, () => 0)).toBe(5_000);
  });

  it('waits out a provider for at most a day, unless the schedule itself asks for longer', () => {
    expect(nextRetryDelay(schedule, 1, 1e23, () => 0)).toBe(MAX_PROVIDER_WAIT_MS);
    expect(nextRetryDelay(schedule, 1, MAX_PROVIDER_WAIT_MS - 1, () => 0)).toBe(MAX_PROVIDER_WAIT_MS - 1);
    expect(nextRetryDelay([2 * MAX_PROVIDER_WAIT_MS], 1, 1e23, () => 0)).toBe(2 * MAX_PROVIDER_WAIT_MS);
  });

  it('adds at most 10% jitter', () => {
    for (let i = 0; i < 200; i++) {
      const d = nextRetryDelay([1_000], 1, undefined)!;
      expect(d).toBeGreaterThanOrEqual(1_000);
      expect(d).toBeLessThanOrEqual(1_100);
    }
  });
});
