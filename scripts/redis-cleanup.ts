import { Redis } from 'ioredis';

/**
 * Deletes every Redis key under `prefix:` (a bench's or a test run's queues), so repeated runs do
 * not pile up keys in a shared Redis. SCAN + UNLINK in batches; safe while nothing uses the prefix.
 */
export async function dropKeysWithPrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  let dropped = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) dropped += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return dropped;
}
