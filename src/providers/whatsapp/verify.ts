/**
 * WhatsApp through a WAHA-compatible gateway (devlikeapro/waha): webhook verification.
 *
 * Header:    `X-Webhook-Hmac: <hex>`, with `X-Webhook-Hmac-Algorithm: sha512` (optional; if present
 *            it must say sha512, any case).
 * Algorithm: HMAC-SHA512 over the raw body bytes, keyed with the session's webhook `hmac.key`.
 * Replay:    none; the signature covers no timestamp. Deliveries are deduped on `payload.id`.
 * Docs:      https://waha.devlike.pro/docs/how-to/webhooks/#hmac-authentication
 */
import { webCryptoMac } from '../../lib/crypto.js';
import { hexMacVerdict } from '../helpers.js';
import type { VerifyInput, VerifyResult } from '../types.js';

export const hmacHeader = 'X-Webhook-Hmac';
export const hmacAlgorithmHeader = 'X-Webhook-Hmac-Algorithm';

/**
 * Checks `X-Webhook-Hmac` against HMAC-SHA512(rawBody, hmacKey). Never throws (or rejects);
 * synchronous when `input.mac` is.
 */
export function verifyWhatsApp(input: VerifyInput, cfg: { hmacKey: string }): VerifyResult | Promise<VerifyResult> {
  if (!cfg.hmacKey) return { ok: false, reason: 'no hmac key configured' };
  const algorithm = input.headers.get(hmacAlgorithmHeader);
  if (algorithm !== null && algorithm.trim().toLowerCase() !== 'sha512') {
    return { ok: false, reason: `unsupported ${hmacAlgorithmHeader}` };
  }
  const header = input.headers.get(hmacHeader);
  if (header === null) return { ok: false, reason: `missing ${hmacHeader}` };
  const hex = header.trim();
  if (hex.length !== 128) return { ok: false, reason: `malformed ${hmacHeader}` };
  const engine = input.mac ?? webCryptoMac;
  return hexMacVerdict(() => engine.verifyHmacHex('SHA-512', cfg.hmacKey, input.rawBody, hex), hex, hmacHeader);
}
