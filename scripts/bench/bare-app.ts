/** The baseline for scripts/bench/ingest.ts: a bare Hono app that only parses JSON and answers 200. */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const app = new Hono();
app.post('/webhooks/:key', async (c) => {
  await c.req.json();
  return c.json({ ok: true });
});
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' }, () => {
  process.stdout.write('ready\n');
});
