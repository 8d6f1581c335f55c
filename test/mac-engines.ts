import { beforeAll, describe } from 'vitest';
import { webCryptoMac, type MacEngine } from '../src/lib/crypto.js';
import { nodeMac } from '../src/lib/node-crypto.js';
import type { VerifyResult } from '../src/providers/types.js';

/** Both MAC engines: Web Crypto (verify's default) and node:crypto (the gateway's). */
export const macEngines = [
  ['Web Crypto', webCryptoMac],
  ['node:crypto', nodeMac],
] as const;

let current: MacEngine = webCryptoMac;

/** The engine of the block now running (see describeEachMacEngine). */
export const currentMac = (): MacEngine => current;

/** Registers `tests` once per MAC engine; inside them, currentMac() is that block's engine. */
export function describeEachMacEngine(tests: () => void): void {
  describe.each(macEngines)('with %s', (_name, engine) => {
    beforeAll(() => {
      current = engine;
    });
    tests();
  });
}

/** A verify() result as one word for assertions: 'ok', or the reason it was refused. */
export async function verdictOf(result: VerifyResult | Promise<VerifyResult>): Promise<string> {
  const r = await result;
  return r.ok ? 'ok' : r.reason;
}
