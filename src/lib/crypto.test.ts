import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes, settleCheck } from './crypto.js';

describe('hexToBytes', () => {
  it('parses lower and upper case hex and refuses anything else', () => {
    expect(hexToBytes('00ff7fA0')).toEqual(new Uint8Array([0, 255, 127, 160]));
    expect(hexToBytes('')).toEqual(new Uint8Array(0));
    for (const bad of ['0', 'abc', 'zz', '0g', 'g0', '-1', ' 1', '1 ', '0x', '@0', '`0', 'G0', '/0', ':0', '٠٠']) {
      expect(hexToBytes(bad), bad).toBeNull();
    }
  });

  it('round-trips any bytes, in either case', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const hex = bytesToHex(bytes);
        expect(hexToBytes(hex)).toEqual(bytes);
        expect(hexToBytes(hex.toUpperCase())).toEqual(bytes);
      }),
    );
  });

  it('agrees with a regex-and-parseInt reference on arbitrary strings', () => {
    const reference = (s: string) =>
      s.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(s) ? Uint8Array.from(s.match(/../g) ?? [], (h) => Number.parseInt(h, 16)) : null;
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFgxz /:@`G\u0660'), maxLength: 12 }), (s) => {
        expect(hexToBytes(s)).toEqual(reference(s));
      }),
    );
  });
});

describe('settleCheck', () => {
  const onResult = (ok: boolean) => (ok ? 'match' : 'mismatch');

  it('stays synchronous when the check is: the verdict itself, not a promise of it', () => {
    expect(settleCheck(() => true, onResult, 'failed')).toBe('match');
    expect(settleCheck(() => false, onResult, 'failed')).toBe('mismatch');
  });

  it('follows an asynchronous check', async () => {
    const pending = settleCheck(() => Promise.resolve(true), onResult, 'failed');
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).resolves.toBe('match');
    await expect(settleCheck(() => Promise.resolve(false), onResult, 'failed')).resolves.toBe('mismatch');
  });

  it('turns a throw or a rejection into the error verdict, never an exception', async () => {
    expect(
      settleCheck(() => {
        throw new Error('Zero-length key is not supported');
      }, onResult, 'failed'),
    ).toBe('failed');
    await expect(settleCheck(() => Promise.reject(new Error('bad key')), onResult, 'failed')).resolves.toBe('failed');
  });
});
