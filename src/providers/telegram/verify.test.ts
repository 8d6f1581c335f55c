import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentMac, describeEachMacEngine } from '../../../test/mac-engines.js';
import { verifyTelegram } from './verify.js';

const secretToken = 'sb_Tg-secret_0123456789';
const body = readFileSync(new URL('./fixtures/private_text.json', import.meta.url));
const input = (headers: Record<string, string>) => ({ headers: new Headers(headers), rawBody: body, now: Date.UTC(2026, 0, 1), mac: currentMac() });

/** Every case runs with both MAC engines. */
describeEachMacEngine(() => {
  describe('verifyTelegram', () => {
    it('accepts the configured secret token', async () => {
      expect(await verifyTelegram(input({ 'X-Telegram-Bot-Api-Secret-Token': secretToken }), { secretToken })).toEqual({ ok: true });
    });

    it('reads the header case-insensitively', async () => {
      expect(await verifyTelegram(input({ 'x-telegram-bot-api-secret-token': secretToken }), { secretToken })).toEqual({ ok: true });
    });

    const bad: [string, Record<string, string>, string?][] = [
      ['missing header', {}],
      ['empty header', { 'X-Telegram-Bot-Api-Secret-Token': '' }],
      ['wrong token', { 'X-Telegram-Bot-Api-Secret-Token': 'sb_Tg-secret_0123456780' }],
      ['prefix of the token', { 'X-Telegram-Bot-Api-Secret-Token': secretToken.slice(0, -1) }],
      ['token plus suffix', { 'X-Telegram-Bot-Api-Secret-Token': `${secretToken}x` }],
      ['different case', { 'X-Telegram-Bot-Api-Secret-Token': secretToken.toUpperCase() }],
      ['token in another header', { 'X-Api-Key': secretToken }],
      ['no secret configured', { 'X-Telegram-Bot-Api-Secret-Token': '' }, ''],
    ];
    it.each(bad)('rejects %s', async (_name, headers, configured = secretToken) => {
      const result = await verifyTelegram(input(headers), { secretToken: configured });
      expect(result.ok).toBe(false);
    });

    it('does not depend on the body (Telegram signs nothing; the token is the proof)', async () => {
      const tampered = { headers: new Headers({ 'X-Telegram-Bot-Api-Secret-Token': secretToken }), rawBody: new Uint8Array([1, 2]), now: 0, mac: currentMac() };
      expect(await verifyTelegram(tampered, { secretToken })).toEqual({ ok: true });
    });
  });
});
