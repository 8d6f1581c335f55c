import type { Hono } from 'hono';
import type { AppEnv } from '../types.js';

/** `GET /healthz`: the process is up. `GET /readyz`: SQLite and Redis answer; 503 naming the one that does not. */
export function registerHealth(app: Hono<AppEnv>): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const checks = await c.get('deps').checkReadiness();
    const failing = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
    if (failing.length === 0) return c.json({ status: 'ready', checks });
    return c.json(
      {
        type: 'https://switchboard.dev/problems/not-ready',
        title: 'Not ready',
        status: 503,
        detail: `Unreachable: ${failing.join(', ')}`,
        unreachable: failing,
        checks,
        requestId: c.get('requestId'),
      },
      503,
      { 'Content-Type': 'application/problem+json' },
    );
  });
}
