import { describe, expect, it } from 'vitest';
import { newId } from './ids.js';

describe('newId', () => {
  it('makes prefixed 20-char base-36 ids without repeats', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 50_000; i++) ids.add(newId('msg'));
    expect(ids.size).toBe(50_000);
    for (const id of [...ids].slice(0, 100)) expect(id).toMatch(/^msg_[0-9a-z]{20}$/);
  });

  it('uses every character about equally in the random part', () => {
    // 2.2M characters: each count's standard deviation is 0.4% of its expected value, so 3% is
    // over 7 of them (with 20,000 ids and 5%, one run in a few thousand failed by chance), while
    // a modulo bias (b % 36 over all 256 byte values: +14% for four characters) still fails.
    const ids = 200_000;
    const counts = new Map<string, number>();
    for (let i = 0; i < ids; i++) for (const ch of newId('ch').slice(3 + 9)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(36);
    const expected = (ids * 11) / 36;
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.03);
  });

  it('starts with the creation time, so ids sort by it', () => {
    const t = Date.UTC(2026, 10, 28, 12);
    const ids = [t + 1000, t, t + 1, t + 86_400_000, t + 999].map((at) => newId('msg', at));
    expect(ids.map((id) => Number.parseInt(id.slice(4, 13), 36))).toEqual([t + 1000, t, t + 1, t + 86_400_000, t + 999]);
    expect([...ids].sort()).toEqual([ids[1], ids[2], ids[4], ids[0], ids[3]]);
    // Same millisecond: still distinct.
    const same = new Set(Array.from({ length: 10_000 }, () => newId('msg', t)));
    expect(same.size).toBe(10_000);
  });

  it('keeps the id shape for a fractional, negative or non-finite time', () => {
    for (const at of [1764331200123.7, -5, Number.NaN, Number.POSITIVE_INFINITY]) expect(newId('cv', at)).toMatch(/^cv_[0-9a-z]{20}$/);
    expect(newId('cv', 1764331200123.7).slice(3, 12)).toBe(newId('cv', 1764331200123).slice(3, 12));
  });
});
