/**
 * Shared glue for the providers' `normalize()` functions (zod → SchemaError, small pure helpers)
 * and `verify()` functions (the verdict on a MAC check). Web-standard only (no `node:` imports).
 */
import type { ZodType, output } from 'zod';
import { hexToBytes, settleCheck } from '../lib/crypto.js';
import { SchemaError, type VerifyResult } from './types.js';

/**
 * Optional context a caller may pass to `normalize()`. Some deliveries carry no timestamp of their
 * own (Telegram callback queries, WAHA acks, api messages without `timestamp`); they use
 * `receivedAt` (unix ms), or 0 when it is not given. Keeps normalize pure: the clock is an argument.
 */
export interface NormalizeOptions {
  receivedAt?: number | undefined;
}

export type PathSegment = string | number;

/**
 * Parses `payload` with `schema`, or throws SchemaError naming the first issue's field as a dotted
 * path (`prefix` is prepended, for sub-objects parsed on their own).
 */
export function parseOrThrow<S extends ZodType>(
  schema: S,
  payload: unknown,
  prefix: readonly PathSegment[] = [],
): output<S> {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const segments = [...prefix, ...(issue?.path ?? [])].map((s) => (typeof s === 'symbol' ? s.description ?? '' : String(s)));
  throw new SchemaError(segments.join('.') || '(body)', issue?.message ?? 'Invalid input');
}

/** A copy of `obj` without the keys whose value is `undefined` (keeps `details` tidy). */
export function compact<T extends Record<string, unknown>>(obj: T): Partial<T> {
  const out: Partial<T> = {};
  for (const key of Object.keys(obj) as (keyof T)[]) {
    if (obj[key] !== undefined) out[key] = obj[key];
  }
  return out;
}

/** The digits of `value` when it is a phone-like string (digits only, 5–15 of them as E.164 allows), else undefined. */
export function phoneDigits(value: string | undefined | null): string | undefined {
  if (value == null) return undefined;
  return /^\d{5,15}$/.test(value) ? value : undefined;
}

/** `value` stripped of everything but digits; undefined when nothing is left. */
export function stripToDigits(value: string | undefined | null): string | undefined {
  if (value == null) return undefined;
  const digits = value.replace(/\D+/g, '');
  return digits.length > 0 ? digits : undefined;
}

/**
 * `s`, cut to `max` characters with an ellipsis: provider text quoted in reasons and errors, so a
 * hostile body cannot bloat the log or the answer.
 */
export function clip(s: string, max = 64): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** Non-empty trimmed string or undefined. */
export function nonEmpty(value: string | undefined | null): string | undefined {
  if (value == null) return undefined;
  const t = value.trim();
  return t.length > 0 ? t : undefined;
}

/** Joins the non-empty parts with a space; undefined when none. */
export function joinName(...parts: (string | undefined | null)[]): string | undefined {
  return nonEmpty(parts.filter((p): p is string => typeof p === 'string' && p.trim() !== '').join(' '));
}

/** The media kind for a MIME type: image/video/audio by prefix, anything else a document. */
export function kindFromMime(mime: string | undefined | null): 'image' | 'video' | 'audio' | 'document' {
  const m = (mime ?? '').toLowerCase();
  if (m.startsWith('image/')) return 'image';
  if (m.startsWith('video/')) return 'video';
  if (m.startsWith('audio/')) return 'audio';
  return 'document';
}

const macMatched: VerifyResult = Object.freeze({ ok: true });
const macMismatch: VerifyResult = Object.freeze({ ok: false, reason: 'signature mismatch' });
const macCheckFailed: VerifyResult = Object.freeze({ ok: false, reason: 'signature check failed' });

/**
 * The verdict on a body MAC check, for the providers' `verify()`: never throws or rejects, and is
 * synchronous when the check is (see settleCheck).
 */
export function macVerdict(check: () => boolean | Promise<boolean>): VerifyResult | Promise<VerifyResult> {
  return settleCheck(check, (ok) => (ok ? macMatched : macMismatch), macCheckFailed);
}

/**
 * macVerdict for a MAC the request gave as hex in `header`: a refused one that is not hex at all
 * is reported as malformed. Looked at only once refused: the usual webhook matches, and decoding
 * every signature in JavaScript cost more than the rest of its parsing.
 */
export function hexMacVerdict(check: () => boolean | Promise<boolean>, hex: string, header: string): VerifyResult | Promise<VerifyResult> {
  return settleCheck(check, (ok) => (ok ? macMatched : hexToBytes(hex) !== null ? macMismatch : { ok: false, reason: `malformed ${header}` }), macCheckFailed);
}

/**
 * How deep a stored message's `details` may nest (objects and arrays). Normalizers copy some
 * provider data as it comes (WhatsApp Business contact cards, ad referrals, order items), and a
 * signed body nested thousands of levels deep made `JSON.stringify` overflow the stack inside the
 * commit: a 500. Real deliveries stay under ten levels.
 */
export const MAX_DETAILS_DEPTH = 32;

/**
 * Where `value` first nests deeper than `max` levels, as a dotted path (`contacts.0.urls`), or
 * null when it does not. Walks with its own stack, so no depth can overflow the call stack here.
 */
export function pathDeeperThan(value: unknown, max: number): string | null {
  interface Frame { value: unknown; depth: number; key: PathSegment | null; parent: Frame | null }
  const stack: Frame[] = [{ value, depth: 0, key: null, parent: null }];
  for (let top = stack.pop(); top; top = stack.pop()) {
    if (typeof top.value !== 'object' || top.value === null) continue;
    if (top.depth >= max) {
      const path: PathSegment[] = [];
      for (let f: Frame | null = top; f?.key != null; f = f.parent) path.unshift(f.key);
      return path.join('.') || '(root)';
    }
    const isArray = Array.isArray(top.value);
    for (const [key, child] of Object.entries(top.value)) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: top.depth + 1, key: isArray ? Number(key) : key, parent: top });
    }
  }
  return null;
}
