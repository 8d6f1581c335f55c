import type { Hono } from 'hono';
import { AppError } from '../../errors.js';
import { verifyHandshake } from '../../providers/whatsapp-business/verify.js';
import type { AppEnv } from '../types.js';

/** Webhook bodies above this are refused with 413, counted while reading (not after). */
export const MAX_WEBHOOK_BYTES = 1024 * 1024;

/**
 * The part of Node's IncomingMessage (`c.env.incoming` under @hono/node-server) the body is read
 * from; duck-typed, so this module stays Web-standard.
 */
interface NodeBodyStream {
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: string, listener: (...args: never[]) => void): unknown;
  readableDidRead?: boolean;
}

function nodeBodyStream(env: unknown): NodeBodyStream | null {
  const incoming = (env as { incoming?: Partial<NodeBodyStream> } | undefined)?.incoming;
  return typeof incoming?.on === 'function' && typeof incoming.off === 'function' && incoming.readableDidRead === false
    ? (incoming as NodeBodyStream)
    : null;
}

/**
 * Under Node, the body straight from the IncomingMessage: its chunks are already Buffers, and a
 * body that arrives in one (the usual webhook) is used as is. The Web Request path copies it into
 * a fresh ArrayBuffer first, a copy and a GC-tracked allocation per webhook.
 */
function readNodeBody(stream: NodeBodyStream, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const finish = (err: Error | null) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve(joinChunks(chunks, total));
    };
    const onData = (chunk: Uint8Array) => {
      total += chunk.byteLength;
      // Past the limit: stop keeping it; Node's server discards the rest once the 413 is sent.
      if (total > max) finish(tooLarge(max));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = (err: Error) => finish(err);
    const onClose = () => finish(new Error('The request was closed before its body ended'));
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/**
 * Reads a request body into memory, refusing it as soon as it passes `max` bytes. `env` is the
 * Hono context's env: under @hono/node-server the body is read from the Node request itself.
 * Not an async function: on the Node path it hands back the reader's own promise, where an async
 * function returning a promise would add two turns of the microtask queue to every webhook.
 */
export function readBodyLimited(req: Request, max: number, env?: unknown): Promise<Uint8Array> {
  try {
    const declared = Number(req.headers.get('Content-Length') ?? Number.NaN);
    if (Number.isFinite(declared) && declared > max) return Promise.reject(tooLarge(max));
    const node = nodeBodyStream(env);
    return node ? readNodeBody(node, max) : readWebBody(req, max, declared);
  } catch (err) {
    return Promise.reject(err); // a failure is a rejection, as from an async function
  }
}

async function readWebBody(req: Request, max: number, declared: number): Promise<Uint8Array> {
  // With a declared length within the limit the server stops reading at that length: read it whole.
  if (Number.isFinite(declared) && declared >= 0) return new Uint8Array(await req.arrayBuffer());
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  return joinChunks(chunks, total);
}

/** The body's chunks as one array of `total` bytes; a single chunk is used as is, not copied. */
function joinChunks(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function tooLarge(max: number): AppError {
  return new AppError('payload_too_large', `Body is larger than ${max} bytes`);
}

const JSON_CONTENT = { 'Content-Type': 'application/json' } as const;

export function registerWebhooks(app: Hono<AppEnv>): void {
  /** Meta's verification handshake: 200 with the raw hub.challenge when the verify token matches. */
  app.get('/webhooks/:key', async (c) => {
    const channel = c.get('deps').services.ingest.findChannelByKey(c.req.param('key'));
    if (!channel) throw AppError.notFound('Webhook');
    if (channel.messenger.provider !== 'whatsapp_business') {
      throw new AppError('forbidden', 'Verification handshake is only for WhatsApp Business channels');
    }
    const result = await verifyHandshake(new URL(c.req.url).searchParams, channel.messenger.verifyToken, c.get('deps').mac);
    if (!result.ok) throw new AppError('forbidden', 'Verification token mismatch');
    return c.text(result.challenge, 200);
  });

  app.post('/webhooks/:key', async (c) => {
    const { ingest } = c.get('deps').services;
    const channel = ingest.findChannelByKey(c.req.param('key'));
    if (!channel) throw AppError.notFound('Webhook');
    const rawBody = await readBodyLimited(c.req.raw, MAX_WEBHOOK_BYTES, c.env);
    const result = await ingest.receive(channel, c.req.raw.headers, rawBody);
    const duplicates = result.duplicates + (result.duplicateDelivery ? 1 : 0);
    // What c.json would send, without a JSON.stringify per webhook: the fields are counts.
    return c.body(`{"ok":true,"stored":${result.stored},"duplicates":${duplicates},"ignored":${result.ignored}}`, 200, JSON_CONTENT);
  });
}
