/**
 * WhatsApp Business Platform (Meta Cloud API) webhook verification.
 *
 * Header:    `X-Hub-Signature-256: sha256=<hex>`
 * Algorithm: HMAC-SHA256 over the raw body bytes (as sent: non-ASCII is `\uXXXX`-escaped by Meta,
 *            so re-serialised JSON would not match), keyed with the App Secret.
 * Replay:    none; Meta signs no timestamp. Deliveries are deduped on message/status ids.
 * Handshake: GET `hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` → echo the challenge.
 * Docs:      https://developers.facebook.com/docs/graph-api/webhooks/getting-started
 */
import { webCryptoMac, type MacEngine } from '../../lib/crypto.js';
import { hexMacVerdict } from '../helpers.js';
import type { VerifyInput, VerifyResult } from '../types.js';

export const signatureHeader = 'X-Hub-Signature-256';
const SIGNATURE_PREFIX = 'sha256=';

/**
 * Checks `X-Hub-Signature-256` against HMAC-SHA256(rawBody, appSecret). Never throws (or rejects);
 * synchronous when `input.mac` is.
 */
export function verifyWhatsAppBusiness(input: VerifyInput, cfg: { appSecret: string }): VerifyResult | Promise<VerifyResult> {
  if (!cfg.appSecret) return { ok: false, reason: 'no app secret configured' };
  const header = input.headers.get(signatureHeader);
  if (header === null) return { ok: false, reason: `missing ${signatureHeader}` };
  // `sha256=` and 64 hex digits (see hexMacVerdict). No regex: this runs on every webhook.
  const value = header.trim();
  const hex = value.slice(SIGNATURE_PREFIX.length);
  if (!value.startsWith(SIGNATURE_PREFIX) || hex.length !== 64) return { ok: false, reason: `malformed ${signatureHeader}` };
  const engine = input.mac ?? webCryptoMac;
  return hexMacVerdict(() => engine.verifyHmacHex('SHA-256', cfg.appSecret, input.rawBody, hex), hex, signatureHeader);
}

export type HandshakeResult = { ok: true; challenge: string } | { ok: false };

/**
 * The GET subscription handshake: `hub.mode=subscribe` and a `hub.verify_token` equal (constant
 * time) to the channel's verify token → the raw `hub.challenge`, to be answered as text/plain 200.
 */
export async function verifyHandshake(params: URLSearchParams, verifyToken: string, engine: MacEngine = webCryptoMac): Promise<HandshakeResult> {
  const mode = params.get('hub.mode');
  const token = params.get('hub.verify_token');
  const challenge = params.get('hub.challenge');
  if (mode !== 'subscribe' || token === null || challenge === null || !verifyToken) return { ok: false };
  return (await engine.safeEqual(token, verifyToken)) ? { ok: true, challenge } : { ok: false };
}
