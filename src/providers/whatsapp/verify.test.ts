import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentMac, describeEachMacEngine, verdictOf } from '../../../test/mac-engines.js';
import { bytesToHex, hmac } from '../../lib/crypto.js';
import { verifyWhatsApp } from './verify.js';

const hmacKey = 'sb-waha-hmac-key';
const enc = new TextEncoder();
const body = readFileSync(new URL('./fixtures/message_text.json', import.meta.url));
const sign = async (data: Uint8Array | string, key = hmacKey) => bytesToHex(await hmac('SHA-512', key, data));
const input = (rawBody: Uint8Array, headers: Record<string, string>) => ({ headers: new Headers(headers), rawBody, now: Date.UTC(2026, 0, 1), mac: currentMac() });

/** Every case runs with both MAC engines. */
describeEachMacEngine(() => {
  describe('verifyWhatsApp (WAHA)', () => {
    it('matches the WAHA docs example (key my-secret-key)', async () => {
      const doc = enc.encode('{"event":"message","session":"default","engine":"WEBJS"}');
      const mac = await sign(doc, 'my-secret-key');
      expect(mac.startsWith('208f8a55')).toBe(true);
      expect(mac.endsWith('53fa89')).toBe(true);
      expect(await verifyWhatsApp(input(doc, { 'X-Webhook-Hmac': mac, 'X-Webhook-Hmac-Algorithm': 'sha512' }), { hmacKey: 'my-secret-key' })).toEqual({ ok: true });
    });

    const good: [string, (mac: string) => Record<string, string>][] = [
      ['with algorithm header', (mac) => ({ 'X-Webhook-Hmac': mac, 'X-Webhook-Hmac-Algorithm': 'sha512' })],
      ['algorithm in upper case', (mac) => ({ 'X-Webhook-Hmac': mac, 'X-Webhook-Hmac-Algorithm': 'SHA512' })],
      ['without algorithm header', (mac) => ({ 'X-Webhook-Hmac': mac })],
      ['uppercase hex', (mac) => ({ 'x-webhook-hmac': mac.toUpperCase() })],
    ];
    it.each(good)('accepts %s', async (_name, headers) => {
      expect(await verifyWhatsApp(input(body, headers(await sign(body))), { hmacKey })).toEqual({ ok: true });
    });

    const bad: [string, () => Promise<Record<string, string>>, Uint8Array?, string?][] = [
      ['missing header', async () => ({ 'X-Webhook-Hmac-Algorithm': 'sha512' })],
      ['empty header', async () => ({ 'X-Webhook-Hmac': '' })],
      ['not hex', async () => ({ 'X-Webhook-Hmac': 'g'.repeat(128) })],
      ['truncated', async () => ({ 'X-Webhook-Hmac': (await sign(body)).slice(0, 64) })],
      ['sha256 algorithm', async () => ({ 'X-Webhook-Hmac': await sign(body), 'X-Webhook-Hmac-Algorithm': 'sha256' })],
      ['sha256 mac', async () => ({ 'X-Webhook-Hmac': bytesToHex(await hmac('SHA-256', hmacKey, body)) })],
      ['wrong key', async () => ({ 'X-Webhook-Hmac': await sign(body, 'other-key') })],
      ['tampered body', async () => ({ 'X-Webhook-Hmac': await sign(body) }), enc.encode(body.toString().replace('blue', 'red'))],
      ['no key configured', async () => ({ 'X-Webhook-Hmac': await sign(body) }), body, ''],
    ];
    it.each(bad)('rejects %s', async (_name, headers, raw = body, key = hmacKey) => {
      expect((await verifyWhatsApp(input(raw, await headers()), { hmacKey: key })).ok).toBe(false);
    });

    it('names the fault: malformed for anything but 128 hex digits, mismatch for a wrong MAC', async () => {
      const mac = await sign(body);
      const reason = (header: string) => verdictOf(verifyWhatsApp(input(body, { 'X-Webhook-Hmac': header }), { hmacKey }));
      expect(await reason(mac)).toBe('ok');
      expect(await reason(`${mac.slice(0, -1)}g`)).toBe('malformed X-Webhook-Hmac');
      expect(await reason(`${mac.slice(0, 64)}-${mac.slice(65)}`)).toBe('malformed X-Webhook-Hmac');
      expect(await reason(mac.slice(0, -2))).toBe('malformed X-Webhook-Hmac');
      expect(await reason(await sign(body, 'another-key'))).toBe('signature mismatch');
    });

    it('signs raw bytes: a re-serialised body fails', async () => {
      const raw = enc.encode('{"event":"message","payload":{"body":"Gr\\u00fc\\u00dfe \\ud83d\\ude00"}}');
      const mac = await sign(raw);
      const reserialised = enc.encode(JSON.stringify(JSON.parse(new TextDecoder().decode(raw))));
      expect(await verifyWhatsApp(input(raw, { 'X-Webhook-Hmac': mac }), { hmacKey })).toEqual({ ok: true });
      expect((await verifyWhatsApp(input(reserialised, { 'X-Webhook-Hmac': mac }), { hmacKey })).ok).toBe(false);
    });
  });
});
