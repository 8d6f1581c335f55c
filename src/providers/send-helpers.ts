/**
 * Plumbing shared by the provider senders: one HTTP call with a deadline, `Retry-After` parsing,
 * the generic HTTP retry class, and secret redaction. Web-standard only (no `node:` imports).
 *
 * Senders never throw: every failure here becomes a `SendFailure` value (STYLE.md, Errors §3).
 */
import type { SendResult } from './types.js';

export type SendFailure = Extract<SendResult, { ok: false }>;

/** A response that arrived in time, with its body read (up to `maxBodyBytes`). */
export interface HttpReply {
  ok: true;
  status: number;
  headers: Headers;
  text: string;
}

export type FetchOutcome = HttpReply | { ok: false; failure: SendFailure };

export interface FetchOptions {
  /** Abort the whole exchange (headers and body) after this many ms. */
  timeoutMs: number;
  /** Strings that must never appear in a returned message (tokens, keys, URLs holding them). */
  secrets?: readonly string[] | undefined;
  /** Read at most this much of the response body; providers answer with small JSON. */
  maxBodyBytes?: number | undefined;
}

const MAX_MESSAGE_CHARS = 500;

/**
 * `fetch` with a deadline. Redirects are never followed (`redirect: 'manual'`): a 3xx comes back
 * as a reply. The deadline also races the injected fetch, so one that ignores `signal` still
 * times out. Network errors and timeouts come back as retryable failures, redacted.
 */
export async function fetchWithTimeout(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  { timeoutMs, secrets = [], maxBodyBytes = 64 * 1024 }: FetchOptions,
): Promise<FetchOutcome> {
  // Checked here so fetch's own "Failed to parse URL from <url>" (URLs may hold tokens) never surfaces.
  if (!URL.canParse(url)) {
    return { ok: false, failure: { ok: false, retryable: false, code: 'invalid_url', message: 'the configured URL is not valid' } };
  }
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let deadline: Promise<never> = new Promise<never>(() => {});
  if (Number.isFinite(timeoutMs) && timeoutMs > 0) {
    deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const reason = new DOMException(`no response within ${timeoutMs} ms`, 'TimeoutError');
        controller.abort(reason);
        reject(reason);
      }, timeoutMs);
    });
    deadline.catch(() => {});
  }
  try {
    const res = await Promise.race([fetchFn(url, { ...init, redirect: 'manual', signal: controller.signal }), deadline]);
    const text = await Promise.race([readCapped(res, maxBodyBytes), deadline]);
    return { ok: true, status: res.status, headers: res.headers, text };
  } catch (err) {
    return { ok: false, failure: classifyFetchError(err, timeoutMs, secrets) };
  } finally {
    clearTimeout(timer);
  }
}

/** Turns whatever fetch threw into a retryable `timeout` or `network` failure. */
export function classifyFetchError(err: unknown, timeoutMs: number, secrets: readonly string[] = []): SendFailure {
  const name = err instanceof Error || err instanceof DOMException ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return { ok: false, retryable: true, code: 'timeout', message: `no response within ${timeoutMs} ms` };
  }
  return { ok: false, retryable: true, code: 'network', message: redact(`network error: ${describeError(err)}`, secrets) };
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici: TypeError('fetch failed') with the useful part in `cause` (ECONNREFUSED, ENOTFOUND…).
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause && typeof cause === 'object') {
    const code = typeof cause.code === 'string' ? cause.code : undefined;
    const msg = typeof cause.message === 'string' ? cause.message : undefined;
    if (code && msg) return msg.includes(code) ? msg : `${code}: ${msg}`;
    if (code ?? msg) return (code ?? msg) as string;
  }
  return err.message;
}

async function readCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.byteLength > maxBytes) {
      chunks.push(value.subarray(0, maxBytes - size));
      void reader.cancel().catch(() => {});
      break;
    }
    chunks.push(value);
    size += value.byteLength;
  }
  const decoder = new TextDecoder();
  let out = '';
  for (const c of chunks) out += decoder.decode(c, { stream: true });
  return out + decoder.decode();
}

/**
 * `Retry-After` → milliseconds from `now`: delta-seconds (`"7"`) or an HTTP date. Returns
 * undefined when absent or unparseable; a date in the past gives 0.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  // Only try dates that look like one (Date.parse accepts bare numbers like "-5" as years).
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The generic HTTP class: 408, 429 and 5xx are worth retrying; anything else is not. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A failure classified by HTTP status alone, honouring `Retry-After`; code `http_<status>`. */
export function httpFailure(
  reply: Pick<HttpReply, 'status' | 'headers'>,
  now: number,
  opts: { message?: string | undefined; code?: string | undefined; secrets?: readonly string[] | undefined } = {},
): SendFailure {
  return {
    ok: false,
    retryable: isRetryableStatus(reply.status),
    retryAfterMs: parseRetryAfter(reply.headers.get('retry-after'), now),
    code: opts.code ?? `http_${reply.status}`,
    message: cleanMessage(opts.message ?? `HTTP ${reply.status}`, opts.secrets ?? []),
    httpStatus: reply.status,
  };
}

/** Replaces every occurrence of each non-empty secret (raw and URL-encoded) with `[redacted]`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join('[redacted]');
  }
  return out;
}

/** Redacted and bounded, for messages that quote provider text. */
export function cleanMessage(text: string, secrets: readonly string[]): string {
  const out = redact(text, secrets);
  return out.length > MAX_MESSAGE_CHARS ? `${out.slice(0, MAX_MESSAGE_CHARS)}…` : out;
}

/** JSON.parse that returns undefined instead of throwing. */
export function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Strips trailing slashes so `${base}/path` never doubles them. */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}
