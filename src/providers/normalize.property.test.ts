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
import { normalizeWhatsAppBusiness, normalizeWithSchemas, readSingleText } from './whatsapp-business/normalize.js';
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
      case 'moved':
        checkContact(e.contact);
        expect(nonEmptyString(e.to)).toBe(true);
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

/** Bodies picked from `fixtures` and mutated 1–4 times (see mutate); `idPaths[i]` are fixture i's id-like paths. */
function mutatedBodies(fixtures: Json[], idPaths: Path[][]): fc.Arbitrary<Json> {
  return fc
    .integer({ min: 0, max: fixtures.length - 1 })
    .chain((fi) => fc.tuple(fc.constant(fi), fc.array(fc.tuple(fc.nat(), fc.boolean(), opArb), { minLength: 1, maxLength: 4 })))
    .map(([fi, mutations]) => {
      let body: Json = fixtures[fi]!;
      for (const [n, preferIds, op] of mutations) {
        const pool = preferIds && idPaths[fi]!.length > 0 ? idPaths[fi]! : allPaths(body);
        body = mutate(body, pool[n % pool.length]!, op);
      }
      return body;
    });
}

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
      fc.assert(
        fc.property(mutatedBodies(fixtures, idPaths), (body) => {
          const before = structuredClone(body);
          returnsOrSchemaError(normalize, body, true);
          expect(body).toEqual(before);
        }),
        { numRuns: 1500 },
      );
    });
  });
}

/**
 * WhatsApp Business reads its usual delivery (one text message) without zod (readSingleText): for
 * every body it reads, the result must be exactly the schemas' result; everything else, including
 * every body the schemas refuse, it must leave to them (null).
 */
describe('whatsapp_business single-text reader agrees with the schemas', () => {
  const fixtures = fixturesOf('whatsapp-business');
  // The bodies it reads weigh ten times more, so most mutations probe its edges.
  const readable = fixtures.filter((f) => readSingleText(f) !== null);
  const pool = [...fixtures, ...Array.from({ length: 30 }, () => readable).flat()];
  const idPaths = pool.map((f) => allPaths(f).filter((p) => typeof p[p.length - 1] === 'string' && idLike.test(String(p[p.length - 1]))));

  /** The schemas' answer: a result, or the refused field. */
  function viaSchemas(body: unknown): NormalizeResult | { refused: string } {
    try {
      return normalizeWithSchemas(body);
    } catch (err) {
      if (err instanceof SchemaError) return { refused: err.field };
      throw err;
    }
  }

  /** True when the reader read `body`, after checking it read it as the schemas do. */
  function agrees(body: unknown): boolean {
    const fast = readSingleText(body);
    if (fast === null) return false;
    expect(viaSchemas(body)).toStrictEqual(fast);
    return true;
  }

  it('reads the plain text fixture, leaves the rest (context, referral, BSUID, statuses…) to the schemas', () => {
    const texts = fixtures.filter((f) => JSON.stringify(f).includes('"type":"text"'));
    expect(readable.length).toBeGreaterThanOrEqual(1);
    expect(readable.length).toBeLessThan(texts.length);
    for (const f of fixtures) agrees(f);
    for (const f of readable) expect(normalizeWhatsAppBusiness(f)).toStrictEqual(readSingleText(f));
  });

  it('mutated bodies: whatever it reads, the schemas read the same', () => {
    let read = 0;
    fc.assert(
      fc.property(mutatedBodies(pool, idPaths), (body) => {
        if (agrees(body)) read++;
      }),
      { numRuns: 3000 },
    );
    // Not vacuous: a good share of the mutated bodies is still read by the reader.
    expect(read).toBeGreaterThan(40);
  });

  it('random text bodies, then maybe one mutation; random values: null, or the same as the schemas', () => {
    const anything = fc.anything({ withBoxedValues: true, withNullPrototype: true, withObjectString: true, withSparseArray: true });
    const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^\\d{${min},${max}}$`));
    const optional = <T,>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 4 });
    const defined = (o: Record<string, unknown>): Json => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Json;
    const phoneish = fc.oneof(digits(5, 15), digits(1, 20), fc.constantFrom('', ' ', '+49 151 1234567'), fc.string());
    const textBody = fc
      .record({
        pnid: fc.string({ minLength: 1 }),
        waId: optional(phoneish),
        from: fc.oneof(digits(5, 15), fc.string({ minLength: 1 })),
        name: optional(fc.oneof(fc.string(), fc.constantFrom(' Ann ', '  '))),
        username: optional(fc.string()),
        profile: fc.boolean(),
        contacts: fc.boolean(),
        id: fc.string({ minLength: 1 }),
        timestamp: digits(1, 15),
        text: fc.string({ unit: 'grapheme' }),
      })
      .map((r): Json => ({
        object: 'whatsapp_business_account',
        entry: [{ id: '1', changes: [{ field: 'messages', value: defined({
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: '15550001111', phone_number_id: r.pnid },
          contacts: r.contacts ? [defined({ wa_id: r.waId, profile: r.profile ? defined({ name: r.name, username: r.username }) : undefined })] : undefined,
          messages: [{ from: r.from, id: r.id, timestamp: r.timestamp, type: 'text', text: { body: r.text } }],
        }) }] }],
      }));
    const maybeMutated = fc.tuple(textBody, fc.option(fc.tuple(fc.nat(), opArb), { freq: 2 })).map(([body, m]) => {
      if (m === null) return body;
      const paths = allPaths(body);
      return mutate(body, paths[m[0] % paths.length]!, m[1]);
    });
    let read = 0;
    fc.assert(
      fc.property(fc.oneof({ arbitrary: anything, weight: 1 }, { arbitrary: maybeMutated, weight: 4 }), (body) => {
        if (agrees(body)) read++;
      }),
      { numRuns: 3000 },
    );
    expect(read).toBeGreaterThan(1000);
  });
});
