import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './harness.js';

/** X-Request-Id through the Web-standard path (app.request, no Node response to set it on). */
let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(async () => {
  await h.close();
});

describe('X-Request-Id', () => {
  it('is generated and echoed on success and on problems', async () => {
    const ok = await h.app.request('/healthz');
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const problem = await h.app.request('/api/channels');
    expect(problem.status).toBe(401);
    const id = problem.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(((await problem.json()) as { requestId?: string }).requestId).toBe(id);
  });

  it('keeps a sane caller id and replaces an unsafe one', async () => {
    expect((await h.app.request('/healthz', { headers: { 'X-Request-Id': 'abc:1.2-3_4' } })).headers.get('x-request-id')).toBe('abc:1.2-3_4');
    const replaced = (await h.app.request('/healthz', { headers: { 'X-Request-Id': 'x'.repeat(129) } })).headers.get('x-request-id');
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('routing', () => {
  it("stays on Hono's RegExpRouter, which SmartRouter leaves for TrieRouter when two routes clash", async () => {
    await h.app.request('/healthz'); // SmartRouter settles on its first match
    expect((h.app.router as { name: string }).name).toBe('SmartRouter + RegExpRouter');
  });

  it('replays through POST /api/deliveries/replay; any other action there is an unknown route, before auth', async () => {
    const dry = await h.api('POST', '/api/deliveries/replay', { dryRun: true });
    expect(dry.status).toBe(200);
    expect(await dry.json()).toMatchObject({ matched: 0, dryRun: true });
    expect((await h.app.request('/api/deliveries/replay', { method: 'POST' })).status).toBe(401);
    const other = await h.app.request('/api/deliveries/rewind', { method: 'POST' });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { code?: string }).code).toBe('not_found');
  });
});
