/**
 * Instructions per webhook, counted by valgrind's callgrind: the same comparison as
 * scripts/bench/ingest.ts (full ingest path against a bare Hono app that parses JSON), in a unit
 * that does not move with a shared VM's neighbours. Requests/s on this kind of machine drift by
 * ±15% between runs and rounds; three runs of this gave 339–352k instructions per request for the
 * gateway and 133.6–134.5k for the bare app (the gateway varies with how full its group-commit
 * batches happen to be).
 *
 *   npx tsx scripts/bench/ingest-instructions.ts [--requests 4000] [--warmup 8000] [--connections 64]
 *
 * Each server runs under callgrind with instrumentation off; after the warm-up (which also creates
 * the 5,000 senders' contacts and conversations on the gateway) it is switched on for exactly
 * `--requests` webhooks, then off, and the counts are dumped per thread. Prints instructions per
 * request on the main thread (the event loop: what limits requests/s) and on all threads.
 *
 * Not counted: time in the kernel (socket I/O, WAL writes, fsync) and what memory stalls cost, so
 * the ratio here is an upper bound for the requests/s ratio. Under valgrind the servers run about
 * 50× slower, so group-commit batches are fuller than at full speed. Needs valgrind (on every
 * machine kind here; `apt-get install valgrind` otherwise). Takes about a minute.
 *
 * Traffic goes only to 127.0.0.1; both servers are child processes stopped at the end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { freePort, projectRoot } from '../../test/process.js';
import { dropKeysWithPrefix } from '../redis-cleanup.js';
import { ADMIN_TOKEN, GATEWAY_NODE_FLAGS, buildServers, createBenchChannel, signedRequest, stopChild, waitForServer } from './ingest-setup.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '4000' },
    warmup: { type: 'string', default: '8000' },
    connections: { type: 'string', default: '64' },
  },
});
const requests = Number(values.requests);
const warmup = Number(values.warmup);
const connections = Number(values.connections);
// valgrind names its control files after USER and HOST, so callgrind_control must see the same
// two; HOST is also the gateway's listen address.
const vgEnv = { USER: 'bench', HOST: '127.0.0.1' };

interface Counted {
  main: number;
  all: number;
}

/** Starts `script` under callgrind (instrumentation off) with `env`; resolves once `ready` does. */
async function underCallgrind(script: string, nodeFlags: string[], env: Record<string, string>, outDir: string, port: number, ready: () => Promise<void>) {
  mkdirSync(outDir, { recursive: true });
  const args = [
    '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes',
    '--smc-check=all-non-file', // V8 writes and rewrites machine code at run time
    `--callgrind-out-file=${outDir}/callgrind.out`, `--vgdb-prefix=${outDir}/vgdb`,
    process.execPath, ...nodeFlags, script,
  ];
  const child = spawn('valgrind', args, { cwd: projectRoot, env: { ...process.env, ...env, ...vgEnv, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const failed = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${script} under valgrind exited ${code}:\n${stderr}`))));
  await Promise.race([ready(), failed]);
  return child;
}

function control(outDir: string, pid: number, ...args: string[]): void {
  execFileSync('callgrind_control', [`--vgdb-prefix=${outDir}/vgdb`, ...args, String(pid)], { env: { ...process.env, ...vgEnv }, stdio: 'ignore' });
}

/** Drives `amount` webhooks at `url`; counts only the measured ones, from the dump's totals. */
async function measure(child: ChildProcess, outDir: string, url: string, tag: string): Promise<Counted> {
  const drive = (amount: number, runTag: string) =>
    autocannon({ url, connections, amount, timeout: 120, method: 'POST', requests: [{ setupRequest: (r: any) => ({ ...r, ...signedRequest(runTag) }) }] });
  const warm = await drive(warmup, `${tag}-warm`);
  if (warm.non2xx > 0 || warm.errors > 0) throw new Error(`${tag}: warm-up had ${warm.non2xx} non-2xx, ${warm.errors} errors`);
  control(outDir, child.pid!, '--instr=on');
  const run = await drive(requests, `${tag}-run`);
  control(outDir, child.pid!, '--instr=off');
  control(outDir, child.pid!, '--dump');
  if (run['2xx'] !== requests) throw new Error(`${tag}: ${run['2xx']} of ${requests} answered 2xx`);
  // One file per thread for the dump: callgrind.out.1-01 is the main thread.
  const counted = { main: 0, all: 0 };
  for (const f of readdirSync(outDir).filter((n) => /^callgrind\.out\.1-\d+$/.test(n))) {
    const total = Number(/^totals:\s+(\d+)/m.exec(readFileSync(path.join(outDir, f), 'utf8'))?.[1] ?? 0);
    counted.all += total;
    if (f.endsWith('-01')) counted.main = total;
  }
  return counted;
}

async function main() {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  } catch {
    console.error('valgrind is not installed (apt-get install valgrind)');
    process.exit(2);
  }
  const bareApp = buildServers();
  const work = mkdtempSync(path.join(tmpdir(), 'switchboard-instr-'));
  const queuePrefix = `bench-instr-${process.pid}`;
  const children: ChildProcess[] = [];
  try {
    const rows: Array<[string, Counted]> = [];

    const barePort = await freePort();
    const bareDir = path.join(work, 'bare');
    const bare = await underCallgrind(bareApp, [], {}, bareDir, barePort, () => waitForServer(`http://127.0.0.1:${barePort}/`, { tries: 600, everyMs: 200 }));
    children.push(bare);

    const gwPort = await freePort();
    const gwDir = path.join(work, 'gateway');
    const env = { DATA_DIR: path.join(work, 'data'), ADMIN_TOKEN, LOG_LEVEL: 'warn', QUEUE_PREFIX: queuePrefix };
    const gw = await underCallgrind('dist/src/server.js', GATEWAY_NODE_FLAGS, env, gwDir, gwPort, () => waitForServer(`http://127.0.0.1:${gwPort}/healthz`, { requireOk: true, tries: 600, everyMs: 200 }));
    children.push(gw);
    const hookPath = await createBenchChannel(gwPort);

    console.log(`ingest instructions (callgrind): ${requests} signed WABA webhooks at ${connections} connections, after ${warmup} warm-up`);
    rows.push(['bare Hono (parse JSON)', await measure(bare, bareDir, `http://127.0.0.1:${barePort}${hookPath}`, 'bare')]);
    await stopChild(bare);
    rows.push(['switchboard (full ingest)', await measure(gw, gwDir, `http://127.0.0.1:${gwPort}${hookPath}`, 'full')]);
    await stopChild(gw);

    for (const [name, c] of rows) {
      console.log(`${name.padEnd(28)} main thread ${(c.main / requests / 1000).toFixed(1).padStart(6)}k instructions/request   all threads ${(c.all / requests / 1000).toFixed(1).padStart(6)}k`);
    }
    const [b, f] = [rows[0]![1], rows[1]![1]];
    console.log(`ratio (bare / full instructions, main thread): ${(b.main / f.main).toFixed(2)}   (the requests/s ratio's ceiling: kernel time is not counted)`);
  } finally {
    for (const c of children) await stopChild(c).catch(() => {});
    await dropKeysWithPrefix(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', queuePrefix).catch(() => 0);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
