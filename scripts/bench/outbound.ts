/**
 * Outbound benchmark: 20,000 agent replies committed through the outbound service (message +
 * delivery + outbox row, group-committed), queued by the real outbox relay, sent by the delivery
 * worker to a fake provider (an `api` channel's callback, signed per Standard Webhooks) that
 * answers in 20 ms, in a child process. `api` channels have no rate limit, so none is in the way;
 * `--provider waba` sends through WhatsApp Business channels instead (50 numbers × 80/s, so the
 * rate limiter runs on every send but does not hold the throughput back). `--workers N` runs the
 * delivery worker in N separate processes (as `WORKERS=true` gateway processes would), this one
 * only committing and relaying.
 * Prints deliveries/s (first commit → last sent) and queue-to-sent latency (commit → sent)
 * percentiles, then checks every delivery was sent exactly once.
 *
 *   npx tsx scripts/bench/outbound.ts [--deliveries 20000] [--latency 20] [--concurrency 256] [--rate 0 | --prefill]
 *                                     [--provider api | waba [--channels 50]] [--workers 1]
 *
 * `--rate N` paces the replies at N/s (0 = all at once: p99 then includes the backlog's wait);
 * `--prefill` commits them all before starting the worker (pure delivery throughput).
 * Needs Redis at REDIS_URL (default 127.0.0.1:6379); uses its own queue prefix and a temp data dir.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config.js';
import { buildDeps, closeDeps } from '../../src/deps.js';
import { newId } from '../../src/lib/ids.js';
import { createLogger } from '../../src/log.js';
import { startDeliveryWorker } from '../../src/outbound/worker.js';
import { projectRoot } from '../../test/process.js';
import { dropKeysWithPrefix } from '../redis-cleanup.js';

const { values } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '20000' },
    latency: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '256' },
    rate: { type: 'string', default: '0' },
    prefill: { type: 'boolean', default: false },
    provider: { type: 'string', default: 'api' },
    channels: { type: 'string', default: '50' },
    workers: { type: 'string', default: '1' },
  },
});
const TOTAL = Number(values.deliveries);
const CONCURRENCY = Number(values.concurrency);
const RATE = Number(values.rate);
const CONVERSATIONS = 500;
const PROVIDER = values.provider === 'waba' ? 'waba' : 'api';
/** WABA: one number per channel; 80/s each, so enough numbers keep the rate limit out of the way. */
const CHANNELS = PROVIDER === 'waba' ? Number(values.channels) : 1;
/** 1: the worker runs in this process; N > 1: N worker processes (this one commits and relays). */
const WORKERS = Number(values.workers);

function startReceiver(latency: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/fake-receiver.ts', '--latency', latency, '--provider', PROVIDER], {
    cwd: projectRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const waiters: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiters.shift()?.(line));
  const next = () => new Promise<string>((resolve) => waiters.push(resolve));
  return {
    url: next().then((l) => l.replace(/^url /, '')),
    async count(): Promise<number> {
      const p = next();
      child.stdin!.write('count\n');
      return Number((await p).replace(/^count /, ''));
    },
    stop: () => new Promise<void>((resolve) => (child.once('exit', () => resolve()), child.kill('SIGTERM'))),
  };
}

/** Starts one delivery-worker child process on the bench's database and queue prefix. */
function startWorkerProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/outbound-worker.ts'], {
    cwd: projectRoot,
    env: { ...process.env, ...env, BENCH_CONCURRENCY: String(CONCURRENCY) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => l === 'ready' && resolve());
    child.once('exit', (code) => reject(new Error(`worker process exited ${code}`)));
  });
  ready.catch(() => {});
  return {
    ready,
    stop: () => new Promise<void>((resolve) => (child.once('exit', () => resolve()), child.kill('SIGTERM'))),
    pid: child.pid!,
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux). */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main() {
  const receiver = startReceiver(values.latency!);
  const url = await receiver.url;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'switchboard-outbound-bench-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    ADMIN_TOKEN: 'bench-admin-token-0123456789',
    QUEUE_PREFIX: `bench-outbound-${process.pid}`,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    LOG_LEVEL: 'warn',
    GRAPH_API_BASE_URL: url,
  });
  const deps = buildDeps(config, { log: createLogger('warn') });
  const workerProcesses: Array<ReturnType<typeof startWorkerProcess>> = [];
  const sqlite = deps.db.$client;
  const running: { worker: ReturnType<typeof startDeliveryWorker> | null } = { worker: null };
  try {
    const agent = await deps.services.agents.create({ name: 'Bench Agent', email: 'bench@example.test' });
    const channels = Array.from({ length: CHANNELS }, (_, i) =>
      deps.services.channels.create({
        name: `Bench ${PROVIDER} ${i}`,
        conversationType: 'chat',
        chatbotId: null,
        messenger:
          PROVIDER === 'waba'
            ? { provider: 'whatsapp_business', phoneNumberId: String(1065000 + i), accessToken: 'bench-token', appSecret: 's', verifyToken: 'v' }
            : { provider: 'api', callbackUrl: `${url}/hook` },
        writeFirst: { enabled: false, channelId: null },
        handling: {
          utilization: 0,
          autoAssignLimit: 1000,
          autoAnswer: true,
          notificationTimeoutSec: null,
          completionCodeIds: [],
          completionCodeTimeoutSec: null,
        },
        agentIds: [agent.id],
      }),
    );
    // Active conversations the agent replies in (as ACD would leave them).
    const now = Date.now();
    const conversationIds: string[] = [];
    sqlite.transaction(() => {
      // Contacts wrote recently, so WhatsApp Business free text is inside the 24-hour window.
      const contact = sqlite.prepare(
        `INSERT INTO contacts (id, channel_id, provider_contact_id, phone, reachable, last_inbound_at, created_at, updated_at)
         VALUES (?, ?, ?, ?, 1, ?, ?, ?)`,
      );
      const conv = sqlite.prepare(
        `INSERT INTO conversations (id, channel_id, contact_id, type, state, agent_id, utilization, created_at, updated_at)
         VALUES (?, ?, ?, 'chat', 'active', ?, 0, ?, ?)`,
      );
      for (let i = 0; i < CONVERSATIONS; i++) {
        const ct = newId('ct');
        const cv = newId('cv');
        const channelId = channels[i % CHANNELS]!.id;
        contact.run(ct, channelId, PROVIDER === 'waba' ? String(4915100000000 + i) : `crm-${i}`, String(4915100000000 + i), now, now, now);
        conv.run(cv, channelId, ct, agent.id, now, now);
        conversationIds.push(cv);
      }
    })();

    const startWorker = async () => {
      deps.relay.start();
      if (WORKERS <= 1) {
        running.worker = startDeliveryWorker(deps, { concurrency: CONCURRENCY });
        await running.worker.worker.waitUntilReady();
        return;
      }
      const env = { DATA_DIR: dataDir, QUEUE_PREFIX: config.queuePrefix, REDIS_URL: config.redisUrl, GRAPH_API_BASE_URL: url, LOG_LEVEL: 'warn', ADMIN_TOKEN: 'bench-admin-token-0123456789' };
      for (let i = 0; i < WORKERS; i++) workerProcesses.push(startWorkerProcess(env));
      await Promise.all(workerProcesses.map((w) => w.ready));
    };
    if (!values.prefill) await startWorker();

    const outbound = deps.services.outbound;
    let cpuFrom = process.cpuUsage();
    let childCpuFrom = 0;
    const started = performance.now();
    const CHUNK = RATE > 0 ? Math.max(1, Math.round(RATE / 100)) : 1000;
    for (let sent = 0; sent < TOTAL; sent += CHUNK) {
      const n = Math.min(CHUNK, TOTAL - sent);
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          outbound.reply({
            conversationId: conversationIds[(sent + i) % CONVERSATIONS]!,
            content: { text: `Reply ${sent + i}` },
            actor: { role: 'agent', agentId: agent.id },
          }),
        ),
      );
      if (RATE > 0) {
        const due = ((sent + n) / RATE) * 1000;
        const ahead = due - (performance.now() - started);
        if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
      }
    }
    const committedIn = (performance.now() - started) / 1000;
    let workerStartedAt = 0;
    if (values.prefill) {
      workerStartedAt = Date.now();
      await startWorker();
      cpuFrom = process.cpuUsage();
      childCpuFrom = workerProcesses.reduce((sum, w) => sum + processCpuMs(w.pid), 0);
    }

    const countSent = sqlite.prepare("SELECT count(*) FROM deliveries WHERE status = 'sent'").pluck();
    const deadline = Date.now() + 300_000;
    let last = -1;
    for (;;) {
      const done = countSent.get() as number;
      if (done !== last && process.stderr.isTTY) process.stderr.write(`\rsent ${done}/${TOTAL}`);
      last = done;
      if (done >= TOTAL) break;
      if (Date.now() > deadline) throw new Error(`only ${done}/${TOTAL} sent after 5 minutes`);
      await new Promise((r) => setTimeout(r, 100));
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    const cpu = process.cpuUsage(cpuFrom);
    const childCpuMs = workerProcesses.reduce((sum, w) => sum + processCpuMs(w.pid), 0) - childCpuFrom;

    const rows = sqlite.prepare('SELECT created_at AS c, sent_at AS s, attempts AS a FROM deliveries').all() as Array<{ c: number; s: number; a: number }>;
    const latencies = rows.map((r) => r.s - r.c).sort((a, b) => a - b);
    const first = values.prefill ? workerStartedAt : Math.min(...rows.map((r) => r.c));
    const lastSent = Math.max(...rows.map((r) => r.s));
    const perSecond = TOTAL / ((lastSent - first) / 1000);
    const received = await receiver.count();
    const retried = rows.filter((r) => r.a > 1).length;
    const retryCodes = sqlite
      .prepare("SELECT provider_code AS code, count(*) AS n FROM delivery_attempts WHERE outcome <> 'sent' GROUP BY provider_code")
      .all() as Array<{ code: string; n: number }>;

    process.stdout.write(
      [
        `outbound bench: ${TOTAL} deliveries to ${PROVIDER === 'waba' ? `a fake WhatsApp Cloud API (${CHANNELS} numbers)` : 'a fake api-channel callback'}, ` +
          `provider latency ${values.latency} ms, worker concurrency ${CONCURRENCY}, ` +
          `${values.prefill ? 'all committed before the worker started' : RATE > 0 ? `paced at ${RATE}/s` : 'all submitted at once'}`,
        `  committed in ${committedIn.toFixed(2)} s (${Math.round(TOTAL / committedIn)} replies/s)`,
        `  throughput: ${Math.round(perSecond)} deliveries/s (${values.prefill ? 'worker start' : 'first commit'} → last sent ${((lastSent - first) / 1000).toFixed(2)} s)`,
        `  queue-to-sent: p50 ${percentile(latencies, 50)} ms · p99 ${percentile(latencies, 99)} ms · max ${latencies.at(-1)} ms`,
        `  gateway CPU (${WORKERS > 1 ? `this process + ${WORKERS} worker processes` : 'one process'}): ` +
          `${((cpu.user + cpu.system) / 1000 / TOTAL + childCpuMs / TOTAL).toFixed(3)} ms per delivery` +
          ` (${values.prefill ? 'sending only' : 'committing and sending'})`,
        `  provider received ${received} requests for ${TOTAL} deliveries; ${retried} needed a retry` +
          (retryCodes.length > 0 ? ` (${retryCodes.map((c) => `${c.code} ×${c.n}`).join(', ')})` : ''),
      ].join('\n') + '\n',
    );
    if (received !== TOTAL) process.exitCode = 1;
  } finally {
    await running.worker?.close();
    await Promise.all(workerProcesses.map((w) => w.stop()));
    await deps.queues.deliveries.obliterate({ force: true }).catch(() => {});
    await deps.queues.acd.obliterate({ force: true }).catch(() => {});
    await closeDeps(deps);
    await dropKeysWithPrefix(config.redisUrl, config.queuePrefix).catch(() => 0);
    await receiver.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
