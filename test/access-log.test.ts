import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import type { Deps } from '../src/deps.js';
import { createLogger } from '../src/log.js';
import { createHarness, LogSink, type Harness } from './harness.js';

/** The access log: one line per request at info (route pattern, never the raw path); errors always. */
let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(async () => {
  await h.close();
});

function appLoggingAt(level: string, overrides: Partial<Deps> = {}) {
  const sink = new LogSink();
  const app = createApp({ ...h.deps, log: createLogger(level, sink), ...overrides });
  const lines = () => sink.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
  return { app, lines };
}

/** The real services, with the webhook channel lookup made to fail unexpectedly (a 500). */
function brokenIngest(): Partial<Deps> {
  const ingest = { ...h.deps.services.ingest, findChannelByKey: () => { throw new Error('disk on fire'); } };
  return { services: { ...h.deps.services, ingest } };
}

describe('access log', () => {
  it('at info: a line per request with the route pattern, not the webhook key', async () => {
    const { app, lines } = appLoggingAt('info');
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/webhooks/secret-key-do-not-log', { method: 'POST', body: '{}' })).status).toBe(404);
    expect(lines()).toEqual([
      expect.objectContaining({ level: 30, method: 'GET', route: '/healthz', status: 200 }),
      expect.objectContaining({ level: 30, method: 'POST', route: '/webhooks/:key', status: 404 }),
    ]);
    expect(JSON.stringify(lines())).not.toContain('secret-key-do-not-log');
  });

  it('at warn: nothing for answered requests, an error line for a 500', async () => {
    const { app, lines } = appLoggingAt('warn', brokenIngest());
    expect((await app.request('/healthz')).status).toBe(200);
    expect(lines()).toEqual([]);
    expect((await app.request('/webhooks/any-key', { method: 'POST', body: '{}' })).status).toBe(500);
    expect(lines()).toEqual([expect.objectContaining({ level: 50, route: '/webhooks/:key', status: 500 })]);
  });
});
