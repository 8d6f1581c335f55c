import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { webCryptoMac, type HmacHash } from './crypto.js';
import { nodeMac } from './node-crypto.js';

describe('nodeMac computes what Web Crypto computes', () => {
  const hash = fc.constantFrom<HmacHash>('SHA-256', 'SHA-512');
  const bytesOrString = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 100 }));

  it('the same HMAC for any key and data, and each verifies the other', async () => {
    await fc.assert(
      fc.asyncProperty(hash, bytesOrString.filter((k) => k.length > 0), bytesOrString, async (h, key, data) => {
        const web = await webCryptoMac.hmac(h, key, data);
        const node = nodeMac.hmac(h, key, data);
        expect(Buffer.from(node).toString('hex')).toBe(Buffer.from(web).toString('hex'));
        expect(nodeMac.verifyHmac(h, key, data, web)).toBe(true);
        expect(await webCryptoMac.verifyHmac(h, key, data, node)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses an empty key, as Web Crypto does', async () => {
    expect(() => nodeMac.hmac('SHA-256', '', 'data')).toThrow();
    expect(() => nodeMac.verifyHmac('SHA-256', new Uint8Array(0), 'data', new Uint8Array(32))).toThrow();
    await expect(webCryptoMac.hmac('SHA-256', '', 'data')).rejects.toThrow();
  });

  it('a string key made once and reused gives the MAC of its bytes, for each hash; another key another MAC', async () => {
    for (const h of ['SHA-256', 'SHA-512'] as const) {
      const bytes = new TextEncoder().encode('sécret-ключ');
      const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
      const first = hex(nodeMac.hmac(h, 'sécret-ключ', 'body'));
      expect(hex(nodeMac.hmac(h, 'sécret-ключ', 'body'))).toBe(first);
      expect(hex(nodeMac.hmac(h, bytes, 'body'))).toBe(first);
      expect(hex(await webCryptoMac.hmac(h, 'sécret-ключ', 'body'))).toBe(first);
      expect(hex(nodeMac.hmac(h, 'sécret-ключ2', 'body'))).not.toBe(first);
    }
  });

  it('refuses a MAC that differs in one bit or in length', () => {
    const mac = nodeMac.hmac('SHA-256', 'k', 'data');
    const flipped = Uint8Array.from(mac);
    flipped[5]! ^= 1;
    expect(nodeMac.verifyHmac('SHA-256', 'k', 'data', flipped)).toBe(false);
    expect(nodeMac.verifyHmac('SHA-256', 'k', 'data', mac.subarray(0, 31))).toBe(false);
    expect(nodeMac.verifyHmac('SHA-256', 'k', 'data', new Uint8Array(0))).toBe(false);
  });

  it('safeEqual agrees with Web Crypto on equal, different and differently long strings', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.string(), async (a, b) => {
        expect(nodeMac.safeEqual(a, b)).toBe(a === b);
        expect(nodeMac.safeEqual(a, a)).toBe(true);
        expect(await webCryptoMac.safeEqual(a, b)).toBe(a === b);
      }),
      { numRuns: 200 },
    );
  });
});
