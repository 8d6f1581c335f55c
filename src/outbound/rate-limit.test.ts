import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniquePrefix } from '../../test/harness.js';
import type { MessengerConfig } from '../providers/types.js';
import { createRateLimiter, rateLimitsFor, type RateLimit } from './rate-limit.js';

const waba: MessengerConfig = { provider: 'whatsapp_business', phoneNumberId: '1065', accessToken: 't', appSecret: 's', verifyToken: 'v' };
const telegram: MessengerConfig = { provider: 'telegram', botToken: '7123456789:AAHsecretpart', secretToken: 'x' };
const waha: MessengerConfig = { provider: 'whatsapp', baseUrl: 'http://waha', session: 's', apiKey: 'k', hmacKey: 'h' };
const api: MessengerConfig = { provider: 'api', callbackUrl: 'http://cb', secret: 'whsec_x' };

describe('rateLimitsFor', () => {
  it.each<[string, MessengerConfig, string, RateLimit[]]>([
    ['WABA: 80/s per phone number', waba, '4915', [{ key: '{waba:1065}', perSecond: 80, burst: 8 }]],
    [
      'Telegram: 30/s per bot, 1/s per chat',
      telegram,
      '700',
      [
        { key: '{tg:7123456789}', perSecond: 30, burst: 3 },
        { key: '{tg:7123456789}:chat:700', perSecond: 1, burst: 1 },
      ],
    ],
    [
      'Telegram: 20/min per group',
      telegram,
      '-100123',
      [
        { key: '{tg:7123456789}', perSecond: 30, burst: 3 },
        { key: '{tg:7123456789}:chat:-100123', perSecond: 20 / 60, burst: 1 },
      ],
    ],
    [
      'WAHA: 10/s per channel, 1/s per chat',
      waha,
      '4915',
      [
        { key: '{waha:ch_1}', perSecond: 10, burst: 1 },
        { key: '{waha:ch_1}:chat:4915', perSecond: 1, burst: 1 },
      ],
    ],
    ['api: none', api, 'crm-1', []],
  ])('%s', (_name, messenger, to, expected) => {
    expect(rateLimitsFor('ch_1', messenger, to)).toEqual(expected);
  });

  it('never puts the secret part of a bot token in a key', () => {
    expect(JSON.stringify(rateLimitsFor('ch_1', telegram, '1'))).not.toContain('AAHsecretpart');
  });
});

describe('createRateLimiter (real Redis)', () => {
  let a: Redis;
  let b: Redis;
  const prefix = uniquePrefix();
  beforeAll(() => {
    a = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    b = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  });
  afterAll(async () => {
    const keys = await a.keys(`${prefix}:*`);
    if (keys.length > 0) await a.del(...keys);
    a.disconnect();
    b.disconnect();
  });

  it('takes a token when there is one, else says how long to wait; state is shared by every client', async () => {
    const one = createRateLimiter(a, prefix);
    const two = createRateLimiter(b, prefix);
    const bucket = [{ key: '{t1}', perSecond: 10, burst: 2 }];
    expect(await one.take(bucket)).toBe(0);
    expect(await two.take(bucket)).toBe(0);
    const wait = await one.take(bucket);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(100);
    await new Promise((r) => setTimeout(r, wait + 5));
    expect(await two.take(bucket)).toBe(0);
  });

  it('is all or nothing over several buckets', async () => {
    const limiter = createRateLimiter(a, prefix);
    const bot = { key: '{t2}', perSecond: 100, burst: 1 };
    const chat = { key: '{t2}:chat:1', perSecond: 1, burst: 1 };
    expect(await limiter.take([bot, chat])).toBe(0);
    await new Promise((r) => setTimeout(r, 15));
    const wait = await limiter.take([bot, chat]);
    expect(wait).toBeGreaterThan(900);
    // The bot bucket kept its token: another chat may go.
    expect(await limiter.take([bot, { key: '{t2}:chat:2', perSecond: 1, burst: 1 }])).toBe(0);
  });

  it('holds every message of a paused sender for the pause, across clients; a longer pause is not shortened', async () => {
    const one = createRateLimiter(a, prefix);
    const two = createRateLimiter(b, prefix);
    const bucket = [{ key: '{t4}', perSecond: 1000, burst: 100 }];
    expect(await one.take(bucket, ['{t4}:pause'])).toBe(0);
    await one.pause('{t4}:pause', 300);
    const wait = await two.take(bucket, ['{t4}:chat:1:pause', '{t4}:pause']);
    expect(wait).toBeGreaterThan(200);
    expect(wait).toBeLessThanOrEqual(300);
    await two.pause('{t4}:pause', 50); // shorter: the 300 ms pause stays
    expect(await one.take(bucket, ['{t4}:pause'])).toBeGreaterThan(200);
    expect(await one.take([], ['{t4}:pause'])).toBeGreaterThan(200); // a sender without buckets (api) too
    expect(await one.take(bucket, ['{t4}:chat:2:pause'])).toBe(0); // another pause key: not held
    await new Promise((r) => setTimeout(r, wait + 10));
    expect(await one.take(bucket, ['{t4}:pause'])).toBe(0);
  });

  it('lets a steady stream through at the rate', async () => {
    const limiter = createRateLimiter(a, prefix);
    const bucket = [{ key: '{t3}', perSecond: 50, burst: 5 }];
    const start = Date.now();
    let granted = 0;
    while (Date.now() - start < 400) {
      if ((await limiter.take(bucket)) === 0) granted++;
      else await new Promise((r) => setTimeout(r, 2));
    }
    // 5 at once, then 50/s for ~0.4 s.
    expect(granted).toBeGreaterThanOrEqual(18);
    expect(granted).toBeLessThanOrEqual(27);
  });
});
