import { Redis } from 'ioredis';

/** Integration tests need a real Redis; fail loudly (never skip) when it is not there. */
export default async function setup(): Promise<void> {
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
}
