/**
 * Web Crypto helpers (no `node:` imports) shared by providers and the HTTP edge.
 *
 * Constant-time comparison is delegated to the platform: `crypto.subtle.verify('HMAC', …)` compares
 * a MAC in constant time, so comparing two secrets is done by MAC-ing one with a fresh random key
 * and asking the platform to verify the other against that MAC. No hand-rolled compare loops.
 */

const encoder = new TextEncoder();

export type HmacHash = 'SHA-256' | 'SHA-512';

function toBytes(data: Uint8Array | string): Uint8Array<ArrayBuffer> {
  if (typeof data === 'string') return encoder.encode(data);
  // Copy into a fresh ArrayBuffer-backed view: subtle rejects SharedArrayBuffer-backed views.
  const out = new Uint8Array(data.byteLength);
  out.set(data);
  return out;
}

/**
 * Imported keys for string secrets (channel secrets), so a webhook does not pay importKey each time.
 * Bounded: cleared when full (secrets are few; a rotation simply imports again).
 */
const keyCache = new Map<string, Promise<CryptoKey>>();
/** How many imported MAC keys a cache keeps before it starts over (here and in node-crypto.ts). */
export const KEY_CACHE_MAX = 1024;

async function importHmacKey(key: Uint8Array | string, hash: HmacHash): Promise<CryptoKey> {
  if (typeof key !== 'string') {
    return crypto.subtle.importKey('raw', toBytes(key), { name: 'HMAC', hash }, false, ['sign', 'verify']);
  }
  const cacheKey = `${hash}:${key}`;
  let cached = keyCache.get(cacheKey);
  if (!cached) {
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    cached = crypto.subtle.importKey('raw', toBytes(key), { name: 'HMAC', hash }, false, ['sign', 'verify']);
    keyCache.set(cacheKey, cached);
    cached.catch(() => keyCache.delete(cacheKey));
  }
  return cached;
}

export async function hmac(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string): Promise<Uint8Array> {
  const k = await importHmacKey(key, hash);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, toBytes(data)));
}

/** True when `mac` is the HMAC of `data` under `key`; compared in constant time by the platform. */
export async function verifyHmac(
  hash: HmacHash,
  key: Uint8Array | string,
  data: Uint8Array | string,
  mac: Uint8Array,
): Promise<boolean> {
  const k = await importHmacKey(key, hash);
  return crypto.subtle.verify('HMAC', k, toBytes(mac), toBytes(data));
}

/** Constant-time equality of two strings (lengths may differ; that is not leaked beyond the MAC). */
export async function safeEqual(a: string, b: string): Promise<boolean> {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const mac = await hmac('SHA-256', key, a);
  return verifyHmac('SHA-256', key, b, mac);
}

/**
 * The MAC primitives signature checks need, as a port: provider `verify` code calls these and
 * nothing else, so it stays Web-standard. `webCryptoMac` (crypto.subtle, above) is the default and
 * runs anywhere; a Node host may pass an engine built on node:crypto (src/lib/node-crypto.ts),
 * which computes the same MACs synchronously instead of through the threadpool.
 */
export interface MacEngine {
  hmac(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string): Uint8Array | Promise<Uint8Array>;
  /** True when `mac` is the HMAC of `data` under `key`, compared in constant time. */
  verifyHmac(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string, mac: Uint8Array): boolean | Promise<boolean>;
  /**
   * The same, for a MAC given as hex (either case), as signature headers carry it; false when `hex`
   * is not whole bytes of hex.
   */
  verifyHmacHex(hash: HmacHash, key: Uint8Array | string, data: Uint8Array | string, hex: string): boolean | Promise<boolean>;
  /** Constant-time string equality. */
  safeEqual(a: string, b: string): boolean | Promise<boolean>;
}

export const webCryptoMac: MacEngine = {
  hmac,
  verifyHmac,
  verifyHmacHex(hash, key, data, hex) {
    const mac = hexToBytes(hex);
    return mac === null ? false : verifyHmac(hash, key, data, mac);
  },
  safeEqual,
};

/**
 * Maps a MAC check that may or may not be a promise (see MacEngine) to a verdict, staying
 * synchronous when the engine is: a webhook verified on node:crypto then costs no promise and no
 * extra turn of the microtask queue, which on the ingest path is measurable. A throw or a
 * rejection becomes `onError`.
 */
export function settleCheck<T>(check: () => boolean | Promise<boolean>, onResult: (ok: boolean) => T, onError: T): T | Promise<T> {
  let result: boolean | Promise<boolean>;
  try {
    result = check();
  } catch {
    return onError;
  }
  return typeof result === 'boolean' ? onResult(result) : result.then(onResult, () => onError);
}

export async function sha256Hex(data: string): Promise<string> {
  return bytesToHex(new Uint8Array(await crypto.subtle.digest('SHA-256', toBytes(data))));
}

export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** The value of one hex digit's char code, or -1. */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  const lower = code | 0x20; // A-F → a-f
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/**
 * Parses lowercase or uppercase hex; returns null for anything that is not whole bytes of hex.
 * Char codes, not regex + parseInt per byte: it runs on every signed webhook.
 */
export function hexToBytes(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(hex.charCodeAt(2 * i));
    const lo = hexDigit(hex.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Standard base64 (not url-safe); returns null when the input is not valid base64. */
export function base64ToBytes(b64: string): Uint8Array | null {
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** A random token of `bytes` random bytes, base64url without padding. */
export function randomToken(bytes = 24): string {
  return bytesToBase64(crypto.getRandomValues(new Uint8Array(bytes)))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replaceAll('=', '');
}
