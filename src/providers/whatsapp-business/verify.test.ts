import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentMac, describeEachMacEngine, verdictOf } from '../../../test/mac-engines.js';
import { bytesToHex, hmac } from '../../lib/crypto.js';
import { verifyHandshake, verifyWhatsAppBusiness } from './verify.js';

const appSecret = 'sb-test-app-secret-7f3a';
const now = Date.UTC(2026, 0, 1);
const enc = new TextEncoder();
const fixture = readFileSync(new URL('./fixtures/text.json', import.meta.url));

async function sign(body: Uint8Array | string, secret = appSecret): Promise<string> {
  return `sha256=${bytesToHex(await hmac('SHA-256', secret, body))}`;
}

function input(body: Uint8Array, headers: Record<string, string>) {
  return { headers: new Headers(headers), rawBody: body, now, mac: currentMac() };
}

/** Every case runs with both MAC engines. */
describeEachMacEngine(() => {
  describe('verifyWhatsAppBusiness', () => {
    it('accepts the HMAC-SHA256 of the raw body', async () => {
      const sig = await sign(fixture);
      expect(await verifyWhatsAppBusiness(input(fixture, { 'X-Hub-Signature-256': sig }), { appSecret })).toEqual({ ok: true });
    });

    it('accepts an uppercase hex digest and any header case', async () => {
      const sig = `sha256=${(await sign(fixture)).slice(7).toUpperCase()}`;
      expect(await verifyWhatsAppBusiness(input(fixture, { 'x-hub-signature-256': sig }), { appSecret })).toEqual({ ok: true });
    });

    const bad: [string, () => Promise<Record<string, string>>, Uint8Array?, string?][] = [
      ['missing header', async () => ({})],
      ['empty header', async () => ({ 'X-Hub-Signature-256': '' })],
      ['no sha256= prefix', async () => ({ 'X-Hub-Signature-256': (await sign(fixture)).slice(7) })],
      ['sha1 prefix', async () => ({ 'X-Hub-Signature-256': `sha1=${(await sign(fixture)).slice(7)}` })],
      ['not hex', async () => ({ 'X-Hub-Signature-256': `sha256=${'zz'.repeat(32)}` })],
      ['truncated digest', async () => ({ 'X-Hub-Signature-256': (await sign(fixture)).slice(0, -2) })],
      ['wrong secret', async () => ({ 'X-Hub-Signature-256': await sign(fixture, 'another-secret') })],
      ['tampered body', async () => ({ 'X-Hub-Signature-256': await sign(fixture) }), enc.encode(fixture.toString().replace('shipped', 'shipper'))],
      ['empty app secret configured', async () => ({ 'X-Hub-Signature-256': await sign(fixture) }), fixture, ''],
    ];
    it.each(bad)('rejects %s', async (_name, headers, body = fixture, secret = appSecret) => {
      const result = await verifyWhatsAppBusiness(input(body, await headers()), { appSecret: secret });
      expect(result.ok).toBe(false);
    });

    it('names the fault: malformed for anything but sha256= and 64 hex digits, mismatch for a wrong MAC', async () => {
      const sig = await sign(fixture);
      const reason = (header: string) => verdictOf(verifyWhatsAppBusiness(input(fixture, { 'X-Hub-Signature-256': header }), { appSecret }));
      expect(await reason(sig)).toBe('ok');
      expect(await reason(`  ${sig} `)).toBe('ok');
      // The right MAC with its last digit, or a digit in the middle, made not hex.
      expect(await reason(`${sig.slice(0, -1)}g`)).toBe('malformed X-Hub-Signature-256');
      expect(await reason(`${sig.slice(0, 20)}x${sig.slice(21)}`)).toBe('malformed X-Hub-Signature-256');
      expect(await reason(`sha256=${'zz'.repeat(32)}`)).toBe('malformed X-Hub-Signature-256');
      expect(await reason(sig.slice(0, -2))).toBe('malformed X-Hub-Signature-256');
      expect(await reason(`SHA256=${sig.slice(7)}`)).toBe('malformed X-Hub-Signature-256');
      expect(await reason(await sign(fixture, 'another-secret'))).toBe('signature mismatch');
      const flipped = `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`;
      expect(await reason(flipped)).toBe('signature mismatch');
    });

    it('verifies the raw bytes Meta sent, not a re-serialisation (non-ASCII escaped as \\uXXXX)', async () => {
      // Meta sends non-ASCII as JSON escapes: the backslashes are literally in the bytes.
      const raw = enc.encode('{"text":"Gr\\u00fc\\u00dfe \\ud83d\\ude00"}');
      const sig = await sign(raw);
      const reserialised = enc.encode(JSON.stringify(JSON.parse(new TextDecoder().decode(raw))));
      expect(new TextDecoder().decode(reserialised)).toBe('{"text":"Grüße 😀"}');
      expect(await verifyWhatsAppBusiness(input(raw, { 'X-Hub-Signature-256': sig }), { appSecret })).toEqual({ ok: true });
      expect((await verifyWhatsAppBusiness(input(reserialised, { 'X-Hub-Signature-256': sig }), { appSecret })).ok).toBe(false);
    });
  });

  describe('verifyHandshake', () => {
    const verifyToken = 'sb-verify-token-1';
    const params = (q: string) => new URLSearchParams(q);

    it('returns the raw challenge for subscribe with the right token', async () => {
      expect(await verifyHandshake(params('hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=sb-verify-token-1'), verifyToken, currentMac())).toEqual({
        ok: true,
        challenge: '1158201444',
      });
    });

    const bad: [string, string, string?][] = [
      ['wrong token', 'hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope'],
      ['token prefix only', 'hub.mode=subscribe&hub.challenge=1&hub.verify_token=sb-verify'],
      ['missing token', 'hub.mode=subscribe&hub.challenge=1'],
      ['wrong mode', 'hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=sb-verify-token-1'],
      ['missing mode', 'hub.challenge=1&hub.verify_token=sb-verify-token-1'],
      ['missing challenge', 'hub.mode=subscribe&hub.verify_token=sb-verify-token-1'],
      ['empty configured token', 'hub.mode=subscribe&hub.challenge=1&hub.verify_token=', ''],
    ];
    it.each(bad)('refuses %s', async (_name, q, token = verifyToken) => {
      expect(await verifyHandshake(params(q), token, currentMac())).toEqual({ ok: false });
    });
  });
});
