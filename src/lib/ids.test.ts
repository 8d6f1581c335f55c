import { describe, expect, it } from 'vitest';
import { newId } from './ids.js';

describe('newId', () => {
  it('makes prefixed 20-char base-36 ids without repeats', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 50_000; i++) ids.add(newId('msg'));
    expect(ids.size).toBe(50_000);
    for (const id of [...ids].slice(0, 100)) expect(id).toMatch(/^msg_[0-9a-z]{20}$/);
  });

  it('uses every character about equally', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) for (const ch of newId('ch').slice(3)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(36);
    const expected = (20_000 * 20) / 36;
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.05);
  });
});
