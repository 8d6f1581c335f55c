import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json } from './harness.js';
import { projectRoot } from './process.js';
import {
  activeConversation,
  createAgent,
  createChannel,
  deliveryRow,
  outboundHarness,
  settled,
  startFakes,
  type Fakes,
  type OutboundHarness,
} from './outbound-helpers.js';

let fakes: Fakes;
let h: OutboundHarness;
beforeAll(async () => {
  fakes = await startFakes();
});
afterAll(async () => {
  await fakes.close();
});
afterEach(async () => {
  await h?.close();
  fakes.reset();
});

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/replay.ts', ...args], {
      cwd: projectRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('scripts/replay.ts', () => {
  it('dry-runs, then replays dead deliveries of one channel through the same service, with a progress line', async () => {
    h = outboundHarness(fakes);
    const agent = await createAgent(h);
    const a = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
    const b = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
    const convA = await activeConversation(h, a, agent.id, 'crm-cli-a');
    const convB = await activeConversation(h, b, agent.id, 'crm-cli-b');
    fakes.callback.setDefault({ status: 422 });
    h.startWorker();
    const send = async (conversationId: string) =>
      (await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'x' }, agent.token))).deliveryId as string;
    const inA = [await send(convA.conversationId), await send(convA.conversationId)];
    const inB = await send(convB.conversationId);
    for (const id of [...inA, inB]) await settled(h, id);
    fakes.callback.setDefault(null);
    const before = fakes.callback.requestCount;
    const env = { DATA_DIR: h.config.dataDir, REDIS_URL: h.config.redisUrl, QUEUE_PREFIX: h.config.queuePrefix };

    const dry = await runCli(['--status', 'dead', '--channel', a.id, '--since', '2h', '--error-code', 'http_422', '--dry-run'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('dry run: 2 deliveries match');
    for (const id of inA) expect(deliveryRow(h, id).status).toBe('dead');

    const run = await runCli(['--status', 'dead', '--channel', a.id, '--since', '2h'], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('replayed 2/2 (100%)');
    expect(run.stdout).toContain('replayed 2');
    expect(run.stdout).toContain('queued');
    for (const id of inA) expect(await settled(h, id)).toMatchObject({ status: 'sent', replays: 1 });
    expect(deliveryRow(h, inB).status).toBe('dead');
    expect(fakes.callback.requestCount).toBe(before + 2);

    const bad = await runCli(['--status', 'sent'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('never replayed');
  });

  it('refuses a DATA_DIR without a database (exit 2) instead of creating one, and takes an empty LOG_LEVEL as unset', async () => {
    const missing = path.join(tmpdir(), `switchboard-no-db-${process.pid}-${Date.now()}`);
    const r = await runCli(['--dry-run'], { DATA_DIR: missing, LOG_LEVEL: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no database at ${path.join(missing, 'switchboard.sqlite')}`);
    expect(existsSync(missing)).toBe(false);
  });
});
