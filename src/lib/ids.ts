const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

export type IdPrefix = 'ag' | 'cc' | 'cb' | 'ch' | 'ct' | 'cv' | 'msg' | 'dl';

/** A prefixed random id (`ch_…`): 20 chars of base36, about 103 bits. */
export function newId(prefix: IdPrefix): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  let out = '';
  for (const b of bytes) out += alphabet[b % 36];
  return `${prefix}_${out}`;
}
