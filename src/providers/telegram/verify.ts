/**
 * Telegram Bot API webhook verification.
 *
 * Header:    `X-Telegram-Bot-Api-Secret-Token: <secret_token given to setWebhook>`
 * Algorithm: shared secret (not an HMAC: the body is not signed), compared in constant time.
 * Replay:    none; Telegram signs nothing. Deliveries are deduped on `update_id`.
 * Docs:      https://core.telegram.org/bots/api#setwebhook
 */
import { webCryptoMac } from '../../lib/crypto.js';
import type { VerifyInput, VerifyResult } from '../types.js';

export const secretTokenHeader = 'X-Telegram-Bot-Api-Secret-Token';

/** Checks `X-Telegram-Bot-Api-Secret-Token` equals the channel's secret token. Never throws. */
export async function verifyTelegram(input: VerifyInput, cfg: { secretToken: string }): Promise<VerifyResult> {
  if (!cfg.secretToken) return { ok: false, reason: 'no secret token configured' };
  const header = input.headers.get(secretTokenHeader);
  if (header === null || header === '') return { ok: false, reason: `missing ${secretTokenHeader}` };
  try {
    return (await (input.mac ?? webCryptoMac).safeEqual(header, cfg.secretToken)) ? { ok: true } : { ok: false, reason: 'secret token mismatch' };
  } catch {
    return { ok: false, reason: 'secret token check failed' };
  }
}
