import { fdatasync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

function textPayload(id: string, from: string) {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '1', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '1555', phone_number_id: '3001' },
      contacts: [{ profile: { name: 'Ana' }, wa_id: from }],
      messages: [{ from, id, timestamp: '1767225600', type: 'text', text: { body: 'hi' } }],
    } }] }],
  });
}

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
    const post = async (body: string) =>
      h!.app.request(new URL(ch.webhookUrl).pathname, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', 's3cret', body))}` },
        body,
      });

    expect((await post(textPayload('wamid.F1', '4915100001'))).status).toBe(200);
    dying = true;
    const failed = await post(textPayload('wamid.F2', '4915100002'));
    expect(failed.status).toBe(500);
    expect(failed.headers.get('Content-Type')).toBe('application/problem+json');
    const ready = await h.app.request('/readyz');
    expect(ready.status).toBe(503);
    expect((await json(ready)).checks.sqlite).toMatch(/WAL sync failed.*EIO/);

    // The provider's retry finds the message already committed, yet is not acknowledged either.
    expect((await post(textPayload('wamid.F2', '4915100002'))).status).toBe(500);
    expect((await post(textPayload('wamid.F3', '4915100003'))).status).toBe(500);
    expect((await h.app.request('/healthz')).status).toBe(200); // alive, not ready
  });
});
