import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentMac, describeEachMacEngine } from '../../../test/mac-engines.js';
import { bytesToBase64, hmac } from '../../lib/crypto.js';
import { decodeWebhookSecret, signStandardWebhook, verifyApi } from './verify.js';

// 32 bytes 0x00..0x1f, base64-encoded.
const key = Uint8Array.from({ length: 32 }, (_, i) => i);
const secret = `whsec_${bytesToBase64(key)}`;
const otherSecret = `whsec_${bytesToBase64(new Uint8Array(32).fill(7))}`;
const body = readFileSync(new URL('./fixtures/message_text.json', import.meta.url), 'utf8');
const enc = new TextEncoder();
const nowSec = 1767261600; // 2026-01-01T10:00:00Z
const now = nowSec * 1000;
const id = 'msg_2Kq9sbExample';

async function headers(over: Record<string, string | undefined> = {}, sigBody = body, ts = nowSec, s = secret) {
  const h: Record<string, string> = {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': await signStandardWebhook(s, id, ts, sigBody),
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete h[k];
    else h[k] = v;
  }
  return new Headers(h);
}
/**
 * `v1,<base64>` of a 32-byte MAC with the two unused bits of its last character set: other text,
 * the same bytes for a lenient decoder (the test checks that it is).
 */
function nonCanonical(sig: string): string {
  const b64 = sig.slice(3);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const last = b64.length - 2; // 32 bytes: 43 characters, then one '='
  const spelled = b64.slice(0, last) + alphabet[alphabet.indexOf(b64[last]!) | 3] + b64.slice(last + 1);
  if (spelled === b64 || !Buffer.from(spelled, 'base64').equals(Buffer.from(b64, 'base64'))) throw new Error('not another spelling of the same bytes');
  return `v1,${spelled}`;
}
const input = (h: Headers, raw: Uint8Array | string = body, at = now) => ({ headers: h, rawBody: typeof raw === 'string' ? enc.encode(raw) : raw, now: at, mac: currentMac() });

/** Every case runs with both MAC engines. */
describeEachMacEngine(() => {
  describe('signStandardWebhook', () => {
    it('produces v1,<base64 HMAC-SHA256 of id.timestamp.body>', async () => {
      const expected = bytesToBase64(await hmac('SHA-256', key, `${id}.${nowSec}.${body}`));
      expect(await signStandardWebhook(secret, id, nowSec, body)).toBe(`v1,${expected}`);
    });

    it('matches the Standard Webhooks reference example', async () => {
      // From the spec's test vectors (libraries/javascript): secret, msg id, timestamp and payload.
      const sig = await signStandardWebhook(
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265330,
        '{"test": 2432232314}',
      );
      expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    });

    it('throws on a secret that is not base64', async () => {
      await expect(signStandardWebhook('whsec_***', id, nowSec, body)).rejects.toThrow();
    });

    it('decodes secrets with or without the whsec_ prefix', () => {
      expect(decodeWebhookSecret(secret)).toEqual(key);
      expect(decodeWebhookSecret(bytesToBase64(key))).toEqual(key);
      expect(decodeWebhookSecret('whsec_')).toBeNull();
    });
  });

  describe('verifyApi', () => {
    it('accepts a fresh, correctly signed request', async () => {
      expect(await verifyApi(input(await headers()), { secret })).toEqual({ ok: true });
    });

    const good: [string, () => Promise<Headers>, number?][] = [
      ['a timestamp 299 s in the past', async () => headers({}, body, nowSec - 299)],
      ['a timestamp 299 s in the future', async () => headers({}, body, nowSec + 299)],
      ['exactly 300 s off', async () => headers({}, body, nowSec - 300)],
      [
        'any one matching signature among several (key rotation)',
        async () => {
          const old = await signStandardWebhook(otherSecret, id, nowSec, body);
          const cur = await signStandardWebhook(secret, id, nowSec, body);
          return headers({ 'webhook-signature': `v1a,Zm9v ${old} ${cur}` });
        },
      ],
    ];
    it.each(good)('accepts %s', async (_name, h) => {
      expect(await verifyApi(input(await h()), { secret })).toEqual({ ok: true });
    });

    const bad: [string, () => Promise<Headers>, string?][] = [
      ['missing webhook-signature', () => headers({ 'webhook-signature': undefined })],
      ['missing webhook-id', () => headers({ 'webhook-id': undefined })],
      ['missing webhook-timestamp', () => headers({ 'webhook-timestamp': undefined })],
      ['a different webhook-id than signed', () => headers({ 'webhook-id': 'msg_other' })],
      ['a timestamp other than signed', async () => headers({ 'webhook-timestamp': String(nowSec - 1) })],
      ['a stale timestamp (301 s)', () => headers({}, body, nowSec - 301)],
      ['a future timestamp (301 s)', () => headers({}, body, nowSec + 301)],
      ['a timestamp in milliseconds', async () => headers({ 'webhook-timestamp': String(now) })],
      ['a non-numeric timestamp', () => headers({ 'webhook-timestamp': 'yesterday' })],
      ['the wrong secret', () => headers({}, body, nowSec, otherSecret)],
      ['a tampered body', async () => headers({}, body.replace('address', 'adress'))],
      ['only a v1a entry', () => headers({ 'webhook-signature': 'v1a,Zm9vYmFy' })],
      ['a garbled signature', () => headers({ 'webhook-signature': 'v1,!!!not-base64' })],
      ['a signature without version', async () => headers({ 'webhook-signature': (await signStandardWebhook(secret, id, nowSec, body)).slice(3) })],
      ['an invalid configured secret', () => headers(), 'whsec_'],
      // The same MAC bytes, spelled another way: the reference libraries compare the text.
      ['the signature without its padding', async () => headers({ 'webhook-signature': (await signStandardWebhook(secret, id, nowSec, body)).replace(/=+$/, '') })],
      ['the signature with its unused low bits set', async () => headers({ 'webhook-signature': nonCanonical(await signStandardWebhook(secret, id, nowSec, body)) })],
    ];
    it.each(bad)('rejects %s', async (_name, h, s = secret) => {
      const result = await verifyApi(input(await h()), { secret: s });
      expect(result.ok).toBe(false);
    });

    it('verifies the raw bytes: non-ASCII escapes must not be re-serialised', async () => {
      const raw = '{"type":"message.received","data":{"contact":{"id":"c1"},"message":{"id":"m1","text":"Gr\\u00fc\\u00dfe \\ud83d\\ude00"}}}';
      const h = await headers({}, raw);
      expect(await verifyApi(input(h, raw), { secret })).toEqual({ ok: true });
      expect((await verifyApi(input(h, JSON.stringify(JSON.parse(raw))), { secret })).ok).toBe(false);
    });
  });
});
