/**
 * Switchboard's own `api` messenger: Standard Webhooks verification (and signing, for outbound).
 *
 * Headers:   `webhook-id`, `webhook-timestamp` (unix seconds), `webhook-signature` (space-separated
 *            `v1,<base64>` entries; any one matching suffices, so keys can rotate).
 * Algorithm: HMAC-SHA256 over `${id}.${timestamp}.${rawBody}` (raw bytes), base64; the key is the
 *            base64-decoded part of the secret after `whsec_`.
 * Replay:    timestamps more than 300 s before or after `now` are refused; dedupe on the message id.
 * Docs:      https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
 */
import { base64ToBytes, bytesToBase64, webCryptoMac } from '../../lib/crypto.js';
import type { VerifyInput, VerifyResult } from '../types.js';

export const toleranceSeconds = 300;
const secretPrefix = 'whsec_';
const maxSignatures = 8;
const encoder = new TextEncoder();

/** The HMAC key of a `whsec_<base64>` secret (the prefix is optional), or null if it is not base64. */
export function decodeWebhookSecret(secret: string): Uint8Array | null {
  const b64 = secret.startsWith(secretPrefix) ? secret.slice(secretPrefix.length) : secret;
  if (b64.length === 0) return null;
  const key = base64ToBytes(b64);
  return key !== null && key.length > 0 ? key : null;
}

function signedContent(id: string, timestamp: string, body: Uint8Array | string): Uint8Array {
  const head = encoder.encode(`${id}.${timestamp}.`);
  const tail = typeof body === 'string' ? encoder.encode(body) : body;
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

/** One signer for both directions: the outbound sender's (sign.ts). */
export { signStandardWebhook } from './sign.js';

/** Verifies a Standard Webhooks request against the channel secret. Never throws. */
export async function verifyApi(input: VerifyInput, cfg: { secret: string }): Promise<VerifyResult> {
  const key = decodeWebhookSecret(cfg.secret);
  if (key === null) return { ok: false, reason: 'no valid secret configured' };
  const id = input.headers.get('webhook-id');
  const timestamp = input.headers.get('webhook-timestamp');
  const signature = input.headers.get('webhook-signature');
  if (!id || !timestamp || !signature) return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed webhook-timestamp' };
  if (Math.abs(input.now / 1000 - Number(timestamp)) > toleranceSeconds) {
    return { ok: false, reason: 'webhook-timestamp outside the tolerance window' };
  }

  const macs: string[] = [];
  for (const entry of signature.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const mac = entry.slice(comma + 1);
    // Compared as text, as the reference libraries do: the same bytes spelled another way
    // (without padding, other unused low bits) are not the signature. Garbled base64 never matches.
    if (mac.length > 0 && base64ToBytes(mac) !== null) macs.push(mac);
    // A handful of keys can be rotating at once; more is abuse, not rotation.
    if (macs.length === maxSignatures) break;
  }
  if (macs.length === 0) return { ok: false, reason: 'no v1 signature in webhook-signature' };

  try {
    const content = signedContent(id, timestamp, input.rawBody);
    const engine = input.mac ?? webCryptoMac;
    // The body is MAC'd once; each candidate is then compared in constant time (safeEqual hashes
    // both sides first, so not even the length leaks).
    const expected = bytesToBase64(await engine.hmac('SHA-256', key, content));
    for (const mac of macs) {
      if (await engine.safeEqual(mac, expected)) return { ok: true };
    }
    return { ok: false, reason: 'signature mismatch' };
  } catch {
    return { ok: false, reason: 'signature check failed' };
  }
}
