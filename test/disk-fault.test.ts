import { fdatasync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { channelBody, createHarness, json, postSignedWaba, wabaTextBody, type Harness } from './harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const wabaText = (id: string, from: string) => wabaTextBody(id, from, '3001');

describe('a disk that fails the WAL sync', () => {
  it('acknowledges nothing from the failed sync on, and readiness says the gateway needs a restart', async () => {
    let dying = false;
    const disk = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      if (!dying) return fdatasync(fd, cb);
      setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
    }) as typeof fdatasync;
    h = createHarness({ fdatasync: disk });
    const ch = await json(await h.api('POST', '/api/channels', channelBody({
      messenger: { provider: 'whatsapp_business', phoneNumberId: '3001', accessToken: 't', appSecret: 's3cret', verifyToken: 'v' },
    })));
    const post = (body: string) => postSignedWaba(h!, ch.webhookUrl, 's3cret', body);

    expect((await post(wabaText('wamid.F1', '4915100001'))).status).toBe(200);
    dying = true;
    const failed = await post(wabaText('wamid.F2', '4915100002'));
    expect(failed.status).toBe(500);
    expect(failed.headers.get('Content-Type')).toBe('application/problem+json');
    const ready = await h.app.request('/readyz');
    expect(ready.status).toBe(503);
    expect((await json(ready)).checks.sqlite).toMatch(/WAL sync failed.*EIO/);

    // The provider's retry finds the message already committed, yet is not acknowledged either.
    expect((await post(wabaText('wamid.F2', '4915100002'))).status).toBe(500);
    expect((await post(wabaText('wamid.F3', '4915100003'))).status).toBe(500);
    expect((await h.app.request('/healthz')).status).toBe(200); // alive, not ready
    // F2 was committed before its sync failed (and cannot be taken back); F3, refused after, stored nothing.
    const stored = h.deps.db.$client.prepare('SELECT provider_message_id FROM messages ORDER BY 1').pluck().all();
    expect(stored).toEqual(['wamid.F1', 'wamid.F2']);
    expect(h.deps.db.$client.prepare("SELECT count(*) FROM contacts WHERE phone = '4915100003'").pluck().get()).toBe(0);
  });
});
