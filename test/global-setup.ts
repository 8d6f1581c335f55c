import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { dropKeysWithPrefix } from '../scripts/redis-cleanup.js';

/**
 * Integration tests need a real Redis; fail loudly (never skip) when it is not there. Each run's
 * queue prefixes share a run id (SB_TEST_RUN, inherited by the test workers); the teardown drops
 * their keys so the shared Redis does not fill up run after run.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const runId = `r${process.pid}${randomBytes(3).toString('hex')}`;
  process.env.SB_TEST_RUN = runId;
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(
      `Tests need Redis at ${url} (set REDIS_URL, or run scripts/ensure-redis.sh): ${(err as Error).message}`,
    );
  } finally {
    redis.disconnect();
  }
  return async () => {
    await dropKeysWithPrefix(url, `sbtest-${runId}-*`).catch(() => 0);
  };
}
