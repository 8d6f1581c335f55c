import { describe, expect, it } from 'vitest';
import { pathDeeperThan } from './helpers.js';

/** `levels` arrays inside each other around `inner`. */
function nested(levels: number, inner: unknown = 1): unknown {
  let v = inner;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

describe('pathDeeperThan', () => {
  it('is null for flat values and for nesting up to the limit', () => {
    expect(pathDeeperThan('text', 3)).toBeNull();
    expect(pathDeeperThan(null, 3)).toBeNull();
    expect(pathDeeperThan({ a: 1, b: [1, 2], c: { d: 'x' } }, 3)).toBeNull();
    expect(pathDeeperThan(nested(3), 3)).toBeNull(); // three arrays: levels 0, 1 and 2
  });

  it('names where the value first goes past the limit', () => {
    expect(pathDeeperThan(nested(4), 3)).toBe('0.0.0');
    expect(pathDeeperThan({ contacts: [{ name: 'Ana' }, { urls: [[{ deep: true }]] }] }, 3)).toBe('contacts.1.urls');
  });

  it('walks 100,000 levels without overflowing the stack', () => {
    expect(pathDeeperThan(nested(100_000), 32)).toBe(Array(32).fill('0').join('.'));
    expect(pathDeeperThan(nested(100_000), 200_000)).toBeNull();
  });
});
