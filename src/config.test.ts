import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDuration } from './config.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      dataDir: './data',
      redisUrl: 'redis://127.0.0.1:6379',
      adminToken: undefined,
      publicBaseUrl: 'http://localhost:3000',
      logLevel: 'info',
      graphApiBaseUrl: 'https://graph.facebook.com/v21.0',
      telegramApiBaseUrl: 'https://api.telegram.org',
    });
    expect(c.deliveryRetrySchedule).toEqual([5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000]);
    expect(c.inboundEventsRetentionMs).toBe(7 * 86_400_000);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('keeps inbound events at least a day (Telegram retries for 24 hours)', () => {
    expect(loadConfig({ INBOUND_EVENTS_RETENTION: '36h' }).inboundEventsRetentionMs).toBe(36 * 3_600_000);
    expect(loadConfig({ INBOUND_EVENTS_RETENTION: '30d' }).inboundEventsRetentionMs).toBe(30 * 86_400_000);
    for (const bad of ['12h', '0d', 'forever']) {
      expect(() => loadConfig({ INBOUND_EVENTS_RETENTION: bad })).toThrow(/INBOUND_EVENTS_RETENTION: .*at least a day/);
    }
  });

  it('derives PUBLIC_BASE_URL from PORT and trims trailing slashes from URLs', () => {
    expect(loadConfig({ PORT: '8080' }).publicBaseUrl).toBe('http://localhost:8080');
    expect(loadConfig({ PUBLIC_BASE_URL: 'https://sb.example.com/' }).publicBaseUrl).toBe('https://sb.example.com');
  });

  it('names every bad key at once', () => {
    try {
      loadConfig({ PORT: 'abc', REDIS_URL: 'http://x', LOG_LEVEL: 'loud', DELIVERY_RETRY_SCHEDULE: '5s,later', ADMIN_TOKEN: 'short' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const keys = (err as ConfigError).problems.map((p) => p.split(':')[0]);
      expect(keys.sort()).toEqual(['ADMIN_TOKEN', 'DELIVERY_RETRY_SCHEDULE', 'LOG_LEVEL', 'PORT', 'REDIS_URL']);
    }
  });

  it.each([
    ['shorter than 16 characters', 'short-token'],
    ['with a space (a bearer token is one word)', 'admin token with spaces'],
    ["in the form of an agent's token", 'sbat_0123456789abcdefghij'],
  ])('refuses an ADMIN_TOKEN %s: the admin API would answer 401 to everything', (_name, token) => {
    expect(() => loadConfig({ ADMIN_TOKEN: token })).toThrow(ConfigError);
    expect(loadConfig({ ADMIN_TOKEN: 'a-fine-admin-token-1234' }).adminToken).toBe('a-fine-admin-token-1234');
  });

  it.each([
    ['5s', 5_000],
    ['250ms', 250],
    ['2m', 120_000],
    ['6h', 21_600_000],
    ['1d', 86_400_000],
    ['5', null],
    ['s', null],
    ['-5s', null],
  ])('parses duration %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});
