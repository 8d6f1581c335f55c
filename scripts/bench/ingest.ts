/**
 * Ingest benchmark: the full webhook path (verify, transaction, outbox) against a bare Hono app
 * that only parses JSON. Both are driven with the same signed WhatsApp Business payloads (unique
 * message ids) at the same concurrency for a fixed time, in rounds that alternate the two; prints
 * each round's requests/s, p50/p99 and ratio, then the medians, then counts that every
 * acknowledged message is stored.
 *
 *   npx tsx scripts/bench/ingest.ts [--seconds 10] [--connections 64] [--rounds 3]
 *
 * Each row also gives the server's CPU (all threads) per request. BENCH_THREADS=1 adds per-thread
 * CPU, user/system split and how busy the whole machine was; BENCH_LATENCY=1 prints each round's
 * latency percentiles (p50 … p99.9, max) for both servers; BENCH_PROFILE=<dir> writes a
 * --cpu-prof of the gateway there.
 *
 * Traffic goes only to 127.0.0.1; both servers are child processes stopped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { freePort, projectRoot } from '../../test/process.js';
import { dropKeysWithPrefix } from '../redis-cleanup.js';
import { ADMIN_TOKEN, GATEWAY_NODE_FLAGS, buildServers, createBenchChannel, median, procStat, signedRequest, startChild, stopChild, waitForServer } from './ingest-setup.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
  },
});
const rounds = Math.max(1, Number(values.rounds));
const seconds = Number(values.seconds);
const connections = Number(values.connections);

/** CPU seconds (user + system, all threads) a child process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const [user, sys] = cpuSplit(pid);
  return user + sys;
}
function cpuSplit(pid: number): [number, number] {
  const { user, system } = procStat(`/proc/${pid}/stat`);
  return [user, system];
}

/** Busy, total and stolen jiffies of the whole machine, from /proc/stat. */
function machineCpu(): [number, number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!;
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal (guest time is inside user)
  return [total - idle, total, f[7] ?? 0];
}

/** CPU seconds per thread name (main, libuv workers, V8 GC helpers…), for BENCH_THREADS=1. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const { name, user, system } = procStat(`/proc/${pid}/task/${tid}/stat`);
      out.set(`${name}/${tid === String(pid) ? 'main' : tid}`, user + system);
    } catch { /* thread exited */ }
  }
  return out;
}

async function drive(url: string, runTag: string, pid: number) {
  const cpuBefore = cpuSeconds(pid);
  const threadsBefore = process.env.BENCH_THREADS ? threadCpu(pid) : null;
  const splitBefore = cpuSplit(pid);
  const machineBefore = machineCpu();
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    method: 'POST',
    requests: [{ setupRequest: (req: any) => ({ ...req, ...signedRequest(runTag) }) }],
  });
  const cpu = cpuSeconds(pid) - cpuBefore;
  const machineAfter = machineCpu();
  // Time the hypervisor gave this VM's CPUs to others: the noise a shared host adds.
  const stealPct = ((machineAfter[2] - machineBefore[2]) / Math.max(1, machineAfter[1] - machineBefore[1])) * 100;
  if (threadsBefore) {
    const after = threadCpu(pid);
    const rows = [...after].filter(([name, t]) => t - (threadsBefore.get(name) ?? 0) > 0.05).map(([name, t]) => `${name} ${((t - (threadsBefore.get(name) ?? 0)) / seconds * 100).toFixed(0)}%`);
    const split = cpuSplit(pid);
    const machine = machineCpu();
    const busyPct = ((machine[0] - machineBefore[0]) / (machine[1] - machineBefore[1])) * 100;
    console.log(`  threads of ${pid}: ${rows.join(', ')}; machine busy ${busyPct.toFixed(0)}%; user ${(((split[0] - splitBefore[0]) / seconds) * 100).toFixed(0)}%, system ${(((split[1] - splitBefore[1]) / seconds) * 100).toFixed(0)}%`);
  }
  return {
    stealPct,
    cpuPct: (cpu / seconds) * 100,
    cpuUsPerReq: (cpu * 1e6) / Math.max(1, result['2xx'] + result.non2xx),
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    latency: result.latency,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

type Run = Awaited<ReturnType<typeof drive>>;
/** A run without its latency histogram: what a row prints, and what the medians give. */
type Summary = Omit<Run, 'latency'>;

const row = (name: string, r: Summary) =>
  `${name.padEnd(28)} ${r.rps.toFixed(0).padStart(8)} req/s   p50 ${String(r.p50).padStart(4)} ms   p99 ${String(r.p99).padStart(4)} ms   ` +
  `CPU ${r.cpuPct.toFixed(0).padStart(3)}% (${r.cpuUsPerReq.toFixed(0)} µs/req)   2xx ${r.ok}  non-2xx ${r.non2xx}  errors ${r.errors}` +
  (r.stealPct >= 0.5 ? `   host steal ${r.stealPct.toFixed(0)}%` : '');

/** Each column's median over the rounds (counts summed). */
function medianRun(runs: Run[]): Summary {
  const med = (f: (r: Run) => number) => median(runs.map(f));
  const sum = (f: (r: Run) => number) => runs.reduce((a, r) => a + f(r), 0);
  return {
    rps: med((r) => r.rps), p50: med((r) => r.p50), p99: med((r) => r.p99), cpuPct: med((r) => r.cpuPct),
    cpuUsPerReq: med((r) => r.cpuUsPerReq), stealPct: med((r) => r.stealPct),
    ok: sum((r) => r.ok), non2xx: sum((r) => r.non2xx), errors: sum((r) => r.errors),
  };
}

async function main() {
  const bareApp = buildServers();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'switchboard-bench-'));
  const children: ChildProcess[] = [];
  try {
    const barePort = await freePort();
    const bareChild = await startChild(process.execPath, [bareApp], { PORT: String(barePort) }, (o) => o.includes('ready'));
    children.push(bareChild);

    const gwPort = await freePort();
    const gw = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, ...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []), 'dist/src/server.js'], {
      cwd: projectRoot,
      env: { ...process.env, PORT: String(gwPort), HOST: '127.0.0.1', DATA_DIR: dataDir, ADMIN_TOKEN, LOG_LEVEL: 'warn', QUEUE_PREFIX: `bench-${process.pid}` },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(gw);
    await waitForServer(`http://127.0.0.1:${gwPort}/healthz`, { requireOk: true });
    const hookPath = await createBenchChannel(gwPort);

    // Warm both up briefly, then measure.
    await autocannon({ url: `http://127.0.0.1:${barePort}${hookPath}`, connections: 8, amount: 2000, method: 'POST', requests: [{ setupRequest: (r: any) => ({ ...r, ...signedRequest('warm') }) }] });
    await autocannon({ url: `http://127.0.0.1:${gwPort}${hookPath}`, connections: 8, amount: 2000, method: 'POST', requests: [{ setupRequest: (r: any) => ({ ...r, ...signedRequest('warm') }) }] });

    // Rounds alternate bare and full, so a drift in the host's speed (a shared VM's neighbours) hits
    // both alike; every round is printed, and the summary takes the median of each column.
    const bareRuns: Run[] = [];
    const fullRuns: Run[] = [];
    console.log(`ingest bench: ${connections} connections, ${rounds} round(s) of ${seconds}s per server, signed WABA text payloads`);
    for (let r = 1; r <= rounds; r++) {
      const bare = await drive(`http://127.0.0.1:${barePort}${hookPath}`, `bare${r}`, bareChild.pid!);
      const full = await drive(`http://127.0.0.1:${gwPort}${hookPath}`, `full${r}`, gw.pid!);
      bareRuns.push(bare);
      fullRuns.push(full);
      console.log(`round ${r}`);
      console.log(row('  bare Hono (parse JSON)', bare));
      console.log(row('  switchboard (full ingest)', full));
      console.log(`  ratio (full / bare req/s): ${(full.rps / bare.rps).toFixed(2)}`);
      if (process.env.BENCH_LATENCY) {
        for (const [name, run] of [['bare', bare], ['full', full]] as const) {
          const l = run.latency;
          console.log(`  ${name} latency ms: p50 ${l.p50} p75 ${l.p75} p90 ${l.p90} p97.5 ${l.p97_5} p99 ${l.p99} p99.9 ${l.p99_9} max ${l.max} (mean ${l.average.toFixed(1)})`);
        }
      }
    }

    const walBytes = statSync(path.join(dataDir, 'switchboard.sqlite-wal'), { throwIfNoEntry: false })?.size ?? 0;
    const db = new Database(path.join(dataDir, 'switchboard.sqlite'), { readonly: true });
    const stored = db.prepare("SELECT count(*) FROM messages WHERE provider_message_id LIKE 'wamid.full%'").pluck().get() as number;
    db.close();
    const acknowledged = fullRuns.reduce((a, r) => a + r.ok, 0);

    const bare = medianRun(bareRuns);
    const full = medianRun(fullRuns);
    console.log(rounds > 1 ? `median of ${rounds} rounds` : 'result');
    console.log(row('bare Hono (parse JSON)', bare));
    console.log(row('switchboard (full ingest)', full));
    console.log(`ratio (full / bare req/s): ${(full.rps / bare.rps).toFixed(2)}${rounds > 1 ? ` (per round: ${fullRuns.map((f, i) => (f.rps / bareRuns[i]!.rps).toFixed(2)).join(', ')})` : ''}`);
    console.log(`WAL file after the run: ${(walBytes / 2 ** 20).toFixed(1)} MiB (checkpointed off the event loop, src/db/checkpointer.ts)`);
    console.log(`acknowledged ${acknowledged}, stored ${stored}: ${stored >= acknowledged ? 'every acknowledged message is stored' : `MISSING ${acknowledged - stored}`}`);
    if (stored < acknowledged) process.exitCode = 1;
  } finally {
    for (const c of children) await stopChild(c).catch(() => {});
    await dropKeysWithPrefix(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', `bench-${process.pid}`).catch(() => 0);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
