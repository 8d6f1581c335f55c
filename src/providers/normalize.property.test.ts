/**
 * Property tests over all four normalizers: whatever the body, normalize() either returns a
 * well-formed NormalizeResult or throws SchemaError — never anything else — and never mutates
 * its input.
 */
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeApi } from './api/normalize.js';
import { normalizeTelegram } from './telegram/normalize.js';
import { SchemaError, type NormalizeResult } from './types.js';
import { normalizeWhatsAppBusiness } from './whatsapp-business/normalize.js';
import { normalizeWhatsApp } from './whatsapp/normalize.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

const providers: [string, string, (p: unknown) => NormalizeResult][] = [
  ['whatsapp_business', 'whatsapp-business', normalizeWhatsAppBusiness],
  ['telegram', 'telegram', normalizeTelegram],
  ['whatsapp', 'whatsapp', normalizeWhatsApp],
  ['api', 'api', normalizeApi],
];

function fixturesOf(folder: string): Json[] {
  const dir = new URL(`./${folder}/fixtures/`, import.meta.url);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as Json);
}

const kinds = new Set([
  'text', 'image', 'video', 'audio', 'voice', 'document', 'sticker', 'location', 'contacts', 'interactive',
  'button', 'reaction', 'callback', 'order', 'system', 'edit', 'unsupported', 'template',
]);
const statuses = new Set(['sent', 'delivered', 'read', 'failed']);

const nonEmptyString = (v: unknown) => typeof v === 'string' && v.length > 0;
const optionalString = (v: unknown) => v === undefined || typeof v === 'string';

function checkContact(c: unknown): void {
  expect(c).toBeTypeOf('object');
  const contact = c as Record<string, unknown>;
  expect(nonEmptyString(contact.providerContactId)).toBe(true);
  expect(optionalString(contact.name)).toBe(true);
  expect(optionalString(contact.username)).toBe(true);
  expect(contact.phone === undefined || /^\d+$/.test(contact.phone as string)).toBe(true);
}

/** The contract every returned result must meet. `json`: the input was JSON, so details must be too. */
function checkResult(result: NormalizeResult, json: boolean): void {
  expect(optionalString(result.dedupeKey)).toBe(true);
  expect(Array.isArray(result.events)).toBe(true);
  for (const e of result.events) {
    expect(optionalString(e.routeKey)).toBe(true);
    switch (e.type) {
      case 'message':
        expect(nonEmptyString(e.providerMessageId)).toBe(true);
        checkContact(e.contact);
        expect(kinds.has(e.kind)).toBe(true);
        expect(e.text === null || typeof e.text === 'string').toBe(true);
        expect(Number.isFinite(e.sentAt)).toBe(true);
        expect(e.details === undefined || (typeof e.details === 'object' && e.details !== null)).toBe(true);
        if (json) expect(() => JSON.stringify(e.details)).not.toThrow();
        break;
      case 'status':
        expect(nonEmptyString(e.providerMessageId)).toBe(true);
        expect(statuses.has(e.status)).toBe(true);
        expect(optionalString(e.errorCode)).toBe(true);
        expect(optionalString(e.errorTitle)).toBe(true);
        expect(Number.isFinite(e.at)).toBe(true);
        break;
      case 'reachability':
        checkContact(e.contact);
        expect(typeof e.reachable).toBe('boolean');
        expect(Number.isFinite(e.at)).toBe(true);
        break;
      case 'ignored':
        expect(nonEmptyString(e.reason)).toBe(true);
        break;
      default:
        throw new Error(`unexpected event ${JSON.stringify(e)}`);
    }
  }
}

/** Runs normalize: a result must meet the contract; a throw must be a SchemaError with a field. */
function returnsOrSchemaError(normalize: (p: unknown) => NormalizeResult, payload: unknown, json: boolean): void {
  let result: NormalizeResult;
  try {
    result = normalize(payload);
  } catch (err) {
    expect(err).toBeInstanceOf(SchemaError);
    expect(nonEmptyString((err as SchemaError).field)).toBe(true);
    return;
  }
  checkResult(result, json);
}

function allPaths(v: Json, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => allPaths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) allPaths(v[k]!, [...prefix, k], out);
  return out;
}

/** The value at `path`, or undefined when an earlier mutation removed it. */
function getAt(root: Json, path: Path): Json | undefined {
  let cur: Json | undefined = root;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, k)) return undefined;
    cur = (cur as Record<string | number, Json>)[k];
  }
  return cur;
}

type Op =
  | { op: 'delete' }
  | { op: 'replace'; value: Json }
  | { op: 'swapType' }
  | { op: 'string'; value: string }
  | { op: 'number'; value: number };

function swapType(v: Json): Json {
  if (typeof v === 'string') return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v.length;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 0;
  if (v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  return Object.values(v);
}

/** Applies one mutation to a deep copy of `root` at `path`. */
function mutate(root: Json, path: Path, m: Op): Json {
  const copy = structuredClone(root);
  const apply = (v: Json): Json | undefined => {
    switch (m.op) {
      case 'delete':
        return undefined;
      case 'replace':
        return m.value;
      case 'swapType':
        return swapType(v);
      case 'string':
      case 'number':
        return m.value;
    }
  };
  if (path.length === 0) return apply(copy) ?? null;
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, Json> | Json[] | undefined;
  const key = path[path.length - 1]!;
  if (parent === undefined || parent === null || typeof parent !== 'object' || !Object.hasOwn(parent, key)) return copy;
  const next = apply((parent as Record<string | number, Json>)[key]!);
  if (next === undefined) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete (parent as Record<string, Json>)[key];
  } else {
    (parent as Record<string | number, Json>)[key] = next;
  }
  return copy;
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant<Op>({ op: 'delete' }),
  fc.constant<Op>({ op: 'swapType' }),
  fc.jsonValue({ maxDepth: 2 }).map((value): Op => ({ op: 'replace', value: value as Json })),
  fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constant('')).map((value): Op => ({ op: 'string', value })),
  fc
    .constantFrom(0, -1, 1.5, -0.5, 1e21, Number.MAX_SAFE_INTEGER + 2, 1e308, -1e308)
    .map((value): Op => ({ op: 'number', value })),
);

/** Paths that hold ids, senders and timestamps: where random strings hurt most. */
const idLike = /(^|_)(id|from|to|chat|timestamp|date|type|status|event|object|field)$/i;

for (const [name, folder, normalize] of providers) {
  const fixtures = fixturesOf(folder);
  const paths = fixtures.map((f) => allPaths(f));
  const idPaths = fixtures.map((f, i) => paths[i]!.filter((p) => typeof p[p.length - 1] === 'string' && idLike.test(String(p[p.length - 1]))));

  describe(`${name} normalize properties`, () => {
    it('has fixtures to mutate', () => {
      expect(fixtures.length).toBeGreaterThan(3);
    });

    it('every fixture normalizes and meets the contract', () => {
      for (const f of fixtures) checkResult(normalize(f), true);
    });

    it('random JSON: returns or throws SchemaError', () => {
      fc.assert(fc.property(fc.jsonValue(), (v) => returnsOrSchemaError(normalize, v, true)), { numRuns: 300 });
    });

    it('random JS values: returns or throws SchemaError', () => {
      const anything = fc.anything({
        withBigInt: true,
        withBoxedValues: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withNullPrototype: true,
        withObjectString: true,
        withTypedArray: true,
        withSparseArray: true,
      });
      fc.assert(fc.property(anything, (v) => returnsOrSchemaError(normalize, v, false)), { numRuns: 300 });
    });

    it('random envelopes around random payloads: returns or throws SchemaError', () => {
      // Gets past the first gate of each format, so the inner schemas see random input.
      const inner = fc.jsonValue({ maxDepth: 4 });
      const envelope = fc.oneof(
        fc.record({ object: fc.constant('whatsapp_business_account'), entry: fc.array(fc.record({ changes: fc.array(fc.record({ field: fc.constantFrom('messages', 'x'), value: inner })) })) }),
        fc.record({ update_id: fc.integer(), message: inner }),
        fc.record({ update_id: fc.integer(), callback_query: inner }),
        fc.record({ update_id: fc.integer(), my_chat_member: inner }),
        fc.record({ event: fc.constantFrom('message', 'message.ack', 'message.any'), session: fc.constant('default'), payload: inner }),
        fc.record({ type: fc.constantFrom('message.received', 'other'), data: inner }),
      );
      fc.assert(fc.property(envelope, (v) => returnsOrSchemaError(normalize, v, true)), { numRuns: 500 });
    });

    it('mutated fixtures (drop keys, swap types, random strings/numbers): returns or throws SchemaError, input untouched', () => {
      const arb = fc
        .integer({ min: 0, max: fixtures.length - 1 })
        .chain((fi) =>
          fc.tuple(
            fc.constant(fi),
            fc.array(fc.tuple(fc.nat(), fc.boolean(), opArb), { minLength: 1, maxLength: 4 }),
          ),
        );
      fc.assert(
        fc.property(arb, ([fi, mutations]) => {
          let body: Json = fixtures[fi]!;
          for (const [n, preferIds, op] of mutations) {
            const pool = preferIds && idPaths[fi]!.length > 0 ? idPaths[fi]! : allPaths(body);
            body = mutate(body, pool[n % pool.length]!, op);
          }
          const before = structuredClone(body);
          returnsOrSchemaError(normalize, body, true);
          expect(body).toEqual(before);
        }),
        { numRuns: 1500 },
      );
    });
  });
}
