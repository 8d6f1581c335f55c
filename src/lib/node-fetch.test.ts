import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeTelegram, unusedUrl, type FakeServer } from '../../test/fakes/index.js';
import { fetchWithTimeout } from '../providers/send-helpers.js';
import { sendTelegram } from '../providers/telegram/send.js';
import { createNodeFetch } from './node-fetch.js';

let server: http.Server;
let base: string;
let telegram: FakeServer;
const nodeFetch = createNodeFetch();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.url === '/echo') {
        res.writeHead(201, { 'content-type': 'application/json', 'x-multi': ['a', 'b'] });
        res.end(JSON.stringify({ method: req.method, headers: req.headers, body }));
      } else if (req.url === '/redirect') {
        res.writeHead(302, { location: '/echo' });
        res.end();
      } else if (req.url === '/empty') {
        res.writeHead(204);
        res.end();
      } else if (req.url === '/reset-content') {
        res.writeHead(205);
        res.end();
      } else if (req.url === '/status-600') {
        res.writeHead(600, { 'content-type': 'text/plain' });
        res.end('odd');
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 2_000).unref();
      } else {
        res.writeHead(404);
        res.end('nope');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  telegram = await createFakeTelegram({ botToken: '1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await telegram.close();
});

describe('createNodeFetch', () => {
  it('sends method, headers and body; answers a standard Response with status, headers and body', async () => {
    const res = await nodeFetch(`${base}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k' },
      body: JSON.stringify({ a: 'ü' }),
      redirect: 'manual',
    });
    expect(res).toBeInstanceOf(Response);
    expect(res.status).toBe(201);
    expect(res.headers.get('x-multi')).toBe('a, b');
    const echoed = (await res.json()) as { method: string; headers: Record<string, string>; body: string };
    expect(echoed.method).toBe('POST');
    expect(echoed.headers['x-api-key']).toBe('k');
    expect(echoed.headers['content-length']).toBe(String(Buffer.byteLength('{"a":"ü"}')));
    expect(JSON.parse(echoed.body)).toEqual({ a: 'ü' });
  });

  it('never follows redirects and handles bodiless answers', async () => {
    const res = await nodeFetch(`${base}/redirect`, { method: 'POST', body: 'x', redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/echo');
    expect((await nodeFetch(`${base}/empty`, { redirect: 'manual' })).status).toBe(204);
  });

  it('answers 205 without a body, and fails a status no Response can carry instead of throwing in a callback', async () => {
    // Before: new Response() threw inside node:http's 'response' event and took the process down.
    const reset = await nodeFetch(`${base}/reset-content`, { method: 'POST', body: '{}', redirect: 'manual' });
    expect(reset.status).toBe(205);
    expect(reset.body).toBeNull();
    await expect(nodeFetch(`${base}/status-600`, { method: 'POST', body: '{}', redirect: 'manual' })).rejects.toMatchObject({
      name: 'TypeError',
      message: 'fetch failed',
    });
    // The pool still works afterwards.
    expect((await nodeFetch(`${base}/echo`, { method: 'POST', body: 'x', redirect: 'manual' })).status).toBe(201);
  });

  it('aborts through the signal, before and during the exchange', async () => {
    const before = new AbortController();
    before.abort(new DOMException('stop', 'AbortError'));
    await expect(nodeFetch(`${base}/echo`, { signal: before.signal })).rejects.toMatchObject({ name: 'AbortError' });
    const during = new AbortController();
    const p = nodeFetch(`${base}/slow`, { signal: during.signal });
    setTimeout(() => during.abort(new DOMException('too slow', 'TimeoutError')), 50);
    await expect(p).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('reports a refused connection as fetch does: TypeError with the cause', async () => {
    const err = await nodeFetch(`${await unusedUrl()}/x`, { method: 'POST', body: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as TypeError & { cause: { code: string } }).cause.code).toBe('ECONNREFUSED');
  });

  it('works under the senders: timeout, network error and success classify as with the platform fetch', async () => {
    const timedOut = await fetchWithTimeout(nodeFetch, `${base}/slow`, { method: 'POST', body: 'x' }, { timeoutMs: 100 });
    expect(timedOut).toMatchObject({ ok: false, failure: { retryable: true, code: 'timeout' } });
    const refused = await fetchWithTimeout(nodeFetch, `${await unusedUrl()}/x`, { method: 'POST' }, { timeoutMs: 1000 });
    expect(refused).toMatchObject({ ok: false, failure: { retryable: true, code: 'network' } });
    const ctx = { fetch: nodeFetch, graphApiBaseUrl: base, telegramApiBaseUrl: telegram.url, now: Date.now(), timeoutMs: 2000 };
    const msg = { messageId: 'msg_1', deliveryId: 'dl_1', conversationId: 'cv_1', agentId: null, to: '42', content: { text: 'hi' } };
    expect(await sendTelegram({ botToken: '1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, msg, ctx)).toMatchObject({ ok: true, providerMessageId: expect.stringMatching(/^42:\d+$/) });
  });

  it('hands requests it does not cover to the fallback', async () => {
    const seen: string[] = [];
    const f = createNodeFetch({ fallback: async (input) => (seen.push(String(input)), new Response('fb')) });
    const res = await f(`${base}/echo`, { method: 'POST', body: new ReadableStream(), redirect: 'follow' } as RequestInit);
    expect(await res.text()).toBe('fb');
    expect(seen).toEqual([`${base}/echo`]);
  });
});
