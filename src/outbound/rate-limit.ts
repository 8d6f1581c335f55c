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

/**
 * The sender a channel's messages count against at the provider (a WABA number, a bot, a WAHA
 * session, an api channel's endpoint), as a Redis Cluster hash tag: its pause key (see
 * RateLimiter.pause) and its buckets share it.
 */
export function senderTag(channelId: string, messenger: MessengerConfig): string {
  switch (messenger.provider) {
    case 'whatsapp_business':
      return `{waba:${messenger.phoneNumberId}}`;
    case 'telegram':
      // The bot id (the token's part before ':') is public: it is the bot's user id.
      return `{tg:${messenger.botToken.split(':')[0] ?? channelId}}`;
    case 'whatsapp':
      return `{waha:${channelId}}`;
    case 'api':
      return `{api:${channelId}}`;
  }
}

/**
 * Where a provider's "slow down" applies, as the pause keys a message checks (RateLimiter.take)
 * and the one an answer sets (RateLimiter.pause):
 * - WhatsApp Business, `api`: the sender (the number, the channel's endpoint);
 * - Telegram, WAHA: the chat, for a 429 there may be one chat's or group's flood (PROTOCOLS.md
 *   §2.4), and pausing the whole bot for one busy group would stop every other chat.
 */
export function pauseKeys(channelId: string, messenger: MessengerConfig, to: string): { sender: string; chat: string } {
  const tag = senderTag(channelId, messenger);
  return { sender: `${tag}:pause`, chat: `${tag}:chat:${to}:pause` };
}

/** The buckets a message from this channel to `to` must take a token from. */
export function rateLimitsFor(channelId: string, messenger: MessengerConfig, to: string): RateLimit[] {
  const tag = senderTag(channelId, messenger);
  switch (messenger.provider) {
    case 'whatsapp_business':
      return [limit(tag, 80)];
    case 'telegram':
      return [limit(tag, 30), limit(`${tag}:chat:${to}`, to.startsWith('-') ? 20 / 60 : 1)];
    case 'whatsapp':
      return [limit(tag, 10), limit(`${tag}:chat:${to}`, 1)];
    case 'api':
      return [];
  }
}

/**
 * ARGV[1]  P, the number of pause keys
 * KEYS[1..P]  pause keys (see RateLimiter.pause): while one lives, nothing is taken and the
 *             longest remaining pause is the answer
 * KEYS[P+i]  a bucket: hash {t = tokens, ts = time of t in ms}
 * ARGV[2i], ARGV[2i+1]  its rate in tokens per second and its capacity (burst)
 * Returns 0 after taking one token from every bucket, or, taking nothing, the ms until every
 * bucket holds a token. Time comes from Redis (TIME), so processes with skewed clocks agree.
 */
const TAKE_TOKENS_LUA = `
local p = tonumber(ARGV[1])
local paused = 0
for i = 1, p do
  local t = redis.call('PTTL', KEYS[i])
  if t > paused then paused = t end
end
if paused > 0 then return paused end
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local tokens = {}
local wait = 0
for i = 1, #KEYS - p do
  local key = KEYS[p + i]
  local rate = tonumber(ARGV[2 * i])
  local cap = tonumber(ARGV[2 * i + 1])
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
for i = 1, #KEYS - p do
  local key = KEYS[p + i]
  local rate = tonumber(ARGV[2 * i])
  local cap = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 't', tostring(tokens[i] - 1), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(cap * 1000 / rate) + 1000)
end
return 0
`;

/** KEYS[1] a pause key, ARGV[1] ms: makes it live at least that long (a longer pause stays). */
const PAUSE_LUA = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 0
`;

export interface RateLimiter {
  /**
   * 0 when the message may go now (tokens taken), else ms to wait (nothing taken). While one of
   * `pauses` (pauseKeys) lives, the message waits out the longest first.
   */
  take(limits: readonly RateLimit[], pauses?: readonly string[]): Promise<number>;
  /**
   * The provider said to slow down (PROTOCOLS.md §1.7: 130429 "backoff + global throttle"; a
   * 429): every process holds the messages that check `pauseKey` for `ms`, not only the one that
   * got the answer.
   */
  pause(pauseKey: string, ms: number): Promise<void>;
}

type WithCommands = Redis & {
  sbTakeTokens(numKeys: number, ...args: Array<string | number>): Promise<number>;
  sbPause(numKeys: number, ...args: Array<string | number>): Promise<number>;
};

export function createRateLimiter(redis: Redis, prefix: string): RateLimiter {
  const r = redis as WithCommands;
  if (typeof r.sbTakeTokens !== 'function') redis.defineCommand('sbTakeTokens', { lua: TAKE_TOKENS_LUA });
  if (typeof r.sbPause !== 'function') redis.defineCommand('sbPause', { lua: PAUSE_LUA });
  return {
    async take(limits, pauses = []) {
      if (limits.length === 0 && pauses.length === 0) return 0;
      const keys = [...pauses, ...limits.map((l) => l.key)].map((k) => `${prefix}:rl:${k}`);
      const args = [pauses.length, ...limits.flatMap((l) => [l.perSecond, l.burst])];
      return Number(await r.sbTakeTokens(keys.length, ...keys, ...args));
    },
    async pause(pauseKey, ms) {
      await r.sbPause(1, `${prefix}:rl:${pauseKey}`, Math.max(1, Math.round(ms)));
    },
  };
}
