const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

export type IdPrefix = 'ag' | 'cc' | 'cb' | 'ch' | 'ct' | 'cv' | 'msg' | 'dl';

const ID_CHARS = 20;
/** Leading characters that carry the creation time (ms since the epoch, base 36, good to year 5188). */
const TIME_CHARS = 9;
// Random bytes are drawn in blocks: one getRandomValues call serves ~200 ids on the ingest hot path.
const pool = new Uint8Array(4096);
let offset = pool.length;

/**
 * A prefixed, time-ordered id (`msg_…`): 20 base-36 chars, 9 of creation time in milliseconds then
 * 11 random (about 57 bits, so ids made in the same millisecond do not collide). Time first, as in
 * ULID or UUIDv7: new rows land at the right edge of each id index instead of on a random page,
 * which is what a commit has to write, so a batch of webhooks dirties a few pages, not one per row.
 * Rejection sampling keeps the random characters uniform (bytes ≥ 252 are skipped, so `b % 36` has
 * no bias).
 */
export function newId(prefix: IdPrefix, now = Date.now()): string {
  // Whole non-negative milliseconds: a fraction would put a '.' in the id, a sign a '-'.
  const ms = Number.isFinite(now) && now > 0 ? Math.floor(now) : 0;
  let out = `${prefix}_${ms.toString(36).padStart(TIME_CHARS, '0').slice(-TIME_CHARS)}`;
  let n = TIME_CHARS;
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
