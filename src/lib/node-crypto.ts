import { createHash, createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { KEY_CACHE_MAX, type HmacHash, type MacEngine } from './crypto.js';

/**
 * The MacEngine on node:crypto: the same MACs as Web Crypto's, computed synchronously on the
 * calling thread. Why: crypto.subtle in Node 20 sends every HMAC through the libuv threadpool, and
 * per webhook that round trip (job setup, promise, buffer copies) cost about 120 µs of CPU on the
 * ingest benchmark, against about 5 µs for createHmac; verification is the ingest path's hottest step.
 */
const algorithm: Record<HmacHash, string> = { 'SHA-256': 'sha256', 'SHA-512': 'sha512' };

/**
 * String secrets (channel secrets) as KeyObjects, made once: createHmac with a string key encodes
 * and wraps it on every call, about a seventh of an HMAC over a webhook body (callgrind).
 * Bounded like the Web Crypto key cache: cleared when full, a rotated secret is simply made again.
 */
const keyObjects = new Map<string, KeyObject>();
function keyObject(key: string): KeyObject {
  let k = keyObjects.get(key);
  if (!k) {
    if (keyObjects.size >= KEY_CACHE_MAX) keyObjects.clear();
    k = createSecretKey(Buffer.from(key, 'utf8'));
    keyObjects.set(key, k);
  }
  return k;
}

function hmac(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string): Uint8Array {
  // As Web Crypto does: an empty key is an error, never a MAC anyone could compute.
  if (key.length === 0) throw new Error('Zero-length key is not supported');
  return createHmac(algorithm[hash], typeof key === 'string' ? keyObject(key) : key).update(data).digest();
}

function verifyHmac(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string, mac: Uint8Array): boolean {
  const expected = hmac(hash, key, data);
  // The length of a MAC is public (it is fixed by the algorithm).
  return mac.byteLength === expected.byteLength && timingSafeEqual(expected, mac);
}

export const nodeMac = {
  hmac,
  verifyHmac,
  verifyHmacHex(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string, hex: string): boolean {
    // Decoded natively. Buffer.from stops at the first ASCII character that is not hex, so such a
    // MAC comes out short and is refused by the length check; but it reads a character above
    // U+007F by its low byte (U+0161 as 'a'), so those are refused first: ASCII only.
    if (Buffer.byteLength(hex, 'utf8') !== hex.length) return false;
    const mac = Buffer.from(hex, 'hex');
    return mac.byteLength * 2 === hex.length && verifyHmac(hash, key, data, mac);
  },
  safeEqual(a: string, b: string): boolean {
    // Fixed-length digests, so neither content nor length leaks through the comparison.
    return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest()) && a === b;
  },
} satisfies MacEngine;
