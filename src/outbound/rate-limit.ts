import type { Redis } from 'ioredis';
import type { MessengerConfig } from '../providers/types.js';

/**
 * Per-channel send rate limits, shared by every process through Redis (token buckets).
 * Published provider throughput (PROTOCOLS.md §1.8, §2.4):
 * - WhatsApp Business: 80 messages/s per phone number (the default tier).
 * - Telegram: ~30 messages/s per bot, 1 message/s per chat, 20 messages/minute per group.
 * - WAHA publishes none; an ordinary WhatsApp account that floods gets banned, so we keep
 *   10/s per channel and 1/s per chat.
 * - `api` channels: none (the integration answers 429 + Retry-After when it must).
 * Buckets hold a tenth of a second's worth (at least one token), so bursts stay close to the rate.
 */

export interface RateLimit {
  /** Bucket key without the prefix; the `{…}` part is a Redis Cluster hash tag (one slot per sender). */
  key: string;
  perSecond: number;
  burst: number;
}

function limit(key: string, perSecond: number): RateLimit {
  return { key, perSecond, burst: Math.max(1, Math.floor(perSecond / 10)) };
}

/** The buckets a message from this channel to `to` must take a token from. */
export function rateLimitsFor(channelId: string, messenger: MessengerConfig, to: string): RateLimit[] {
  switch (messenger.provider) {
    case 'whatsapp_business':
      return [limit(`{waba:${messenger.phoneNumberId}}`, 80)];
    case 'telegram': {
      // The bot id (the token's part before ':') is public: it is the bot's user id.
      const bot = `{tg:${messenger.botToken.split(':')[0] ?? channelId}}`;
      const group = to.startsWith('-');
      return [limit(bot, 30), limit(`${bot}:chat:${to}`, group ? 20 / 60 : 1)];
    }
    case 'whatsapp':
      return [limit(`{waha:${channelId}}`, 10), limit(`{waha:${channelId}}:chat:${to}`, 1)];
    case 'api':
      return [];
  }
}

/**
 * KEYS[i]  a bucket: hash {t = tokens, ts = time of t in ms}
 * ARGV[2i-1] its rate in tokens per second, ARGV[2i] its capacity (burst)
 * Returns 0 after taking one token from every bucket, or, taking nothing, the ms until every
 * bucket holds a token. Time comes from Redis (TIME), so processes with skewed clocks agree.
 */
const TAKE_TOKENS_LUA = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local tokens = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', key, 't', 'ts')
  local t = tonumber(v[1]) or cap
  local ts = tonumber(v[2]) or now
  t = math.min(cap, t + math.max(0, now - ts) * rate / 1000)
  if t < 1 then
    local w = math.ceil((1 - t) * 1000 / rate)
    if w > wait then wait = w end
  end
  tokens[i] = t
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 't', tostring(tokens[i] - 1), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(cap * 1000 / rate) + 1000)
end
return 0
`;

export interface RateLimiter {
  /** 0 when the message may go now (tokens taken), else ms to wait (nothing taken). */
  take(limits: readonly RateLimit[]): Promise<number>;
}

type WithTakeTokens = Redis & { sbTakeTokens(numKeys: number, ...args: Array<string | number>): Promise<number> };

export function createRateLimiter(redis: Redis, prefix: string): RateLimiter {
  const r = redis as WithTakeTokens;
  if (typeof r.sbTakeTokens !== 'function') redis.defineCommand('sbTakeTokens', { lua: TAKE_TOKENS_LUA });
  return {
    async take(limits) {
      if (limits.length === 0) return 0;
      const keys = limits.map((l) => `${prefix}:rl:${l.key}`);
      const args = limits.flatMap((l) => [l.perSecond, l.burst]);
      return Number(await r.sbTakeTokens(keys.length, ...keys, ...args));
    },
  };
}
