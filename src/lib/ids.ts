const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

export type IdPrefix = 'ag' | 'cc' | 'cb' | 'ch' | 'ct' | 'cv' | 'msg' | 'dl';

const ID_CHARS = 20;
// Random bytes are drawn in blocks: one getRandomValues call serves ~200 ids on the ingest hot path.
const pool = new Uint8Array(4096);
let offset = pool.length;

/**
 * A prefixed random id (`ch_…`): 20 base-36 chars (about 103 bits). Rejection sampling keeps the
 * characters uniform (bytes ≥ 252 are skipped, so `b % 36` has no bias).
 */
export function newId(prefix: IdPrefix): string {
  let out = `${prefix}_`;
  let n = 0;
  while (n < ID_CHARS) {
    if (offset >= pool.length) {
      crypto.getRandomValues(pool);
      offset = 0;
    }
    const b = pool[offset++]!;
    if (b >= 252) continue;
    out += alphabet[b % 36];
    n++;
  }
  return out;
}
