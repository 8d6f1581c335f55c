/**
 * Standard Webhooks signer (PROTOCOLS.md §4): `webhook-signature: v1,<base64>` where the MAC is
 * HMAC-SHA256 over `${id}.${timestamp}.${body}` keyed with the base64-decoded part of `whsec_…`.
 * Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
 */
import { base64ToBytes, bytesToBase64, webCryptoMac, type MacEngine } from '../../lib/crypto.js';

const SECRET_PREFIX = 'whsec_';

/**
 * Signs one delivery attempt. `secret` is `whsec_<base64>` (a bare base64 key is accepted too, as
 * in the reference libraries). Throws when the secret is not valid base64; the error never
 * quotes the secret.
 */
export async function signStandardWebhook(
  secret: string,
  id: string,
  timestampSec: number,
  body: string,
  engine: MacEngine = webCryptoMac,
): Promise<string> {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = base64ToBytes(encoded);
  if (!key || key.length === 0) throw new Error('webhook secret is not whsec_ followed by base64');
  const mac = await engine.hmac('SHA-256', key, `${id}.${timestampSec}.${body}`);
  return `v1,${bytesToBase64(mac)}`;
}
