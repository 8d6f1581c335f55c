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

  it('verifies a MAC given as hex in either case, as Web Crypto does; refuses hex that is not whole bytes', async () => {
    await fc.assert(
      fc.asyncProperty(hash, bytesOrString.filter((k) => k.length > 0), bytesOrString, fc.boolean(), async (h, key, data, upper) => {
        const hex = Buffer.from(nodeMac.hmac(h, key, data)).toString('hex');
        const given = upper ? hex.toUpperCase() : hex;
        expect(nodeMac.verifyHmacHex(h, key, data, given)).toBe(true);
        expect(await webCryptoMac.verifyHmacHex(h, key, data, given)).toBe(true);
        // Not hex at one place (a decoder that stops there shortens it), trailing junk after a
        // whole MAC (which such a decoder drops), one digit changed, one digit short, one byte short.
        const at = hex.length >> 1;
        // The same digits above ASCII (U+0161 is 'a' by its low byte; full-width digits).
        const shifted = (d: string) => String.fromCharCode(d.charCodeAt(0) + 0x100);
        const fullWidth = (d: string) => String.fromCharCode(d.charCodeAt(0) + 0xfee0);
        const bad = [hex.replace(/./g, shifted), hex.replace(/./g, fullWidth), `${hex.slice(0, at)}${shifted(hex[at]!)}${hex.slice(at + 1)}`,
          `${hex.slice(0, at)}g${hex.slice(at + 1)}`, `${hex}g`, `${hex}0`, `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`, hex.slice(0, -1), hex.slice(0, -2)];
        for (const b of bad) {
          expect(nodeMac.verifyHmacHex(h, key, data, b), b).toBe(false);
          expect(await webCryptoMac.verifyHmacHex(h, key, data, b), b).toBe(false);
        }
      }),
      { numRuns: 100 },
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
