/**
 * Paired comparison of gateway builds on the ingest path: is a change faster, on a machine whose
 * speed drifts by ±15% between runs? Each build named on the command line (a git ref, built here
 * into dist/compare/<commit>/) runs as its own gateway beside the bare Hono app; rounds drive each
 * in turn with the same signed WhatsApp Business payloads (64 connections), the order reversed
 * every other round, with a pause between runs so one gateway's WAL checkpointing does not land
 * on the next one's run. Per round it prints requests/s, p99 and the event loop's CPU per webhook
 * (the main thread's, from /proc: what limits requests/s); at the end, per build, the medians and
 * the median of its per-round ratio to the first build. A change worth having wins in most rounds.
 *
 *   npx tsx scripts/bench/ingest-compare.ts before=HEAD~1 after=HEAD [--rounds 6] [--seconds 5] [--pause 5]
 *   npx tsx scripts/bench/ingest-compare.ts now=HEAD small-cache=HEAD:SOME_ENV=1   (environment per build)
 *   npx tsx scripts/bench/ingest-compare.ts now=HEAD gc=HEAD:NODE_FLAGS=--single-threaded-gc   (node flags per build)
 *
 * Every build runs with this checkout's GATEWAY_NODE_FLAGS (NODE_OPTIONS in a build's environment
 * comes before them) and node_modules: refs with other dependencies need them installed.
 * Traffic goes only to 127.0.0.1; all servers are child processes stopped at the end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { freePort, projectRoot } from '../../test/process.js';
import { dropKeysWithPrefix } from '../redis-cleanup.js';
import { ADMIN_TOKEN, GATEWAY_NODE_FLAGS, buildServers, createBenchChannel, median, procStat, signedRequest, startChild, stopChild, waitForServer } from './ingest-setup.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '5' },
    pause: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
  },
});
const rounds = Math.max(1, Number(values.rounds));
const seconds = Number(values.seconds);
const pauseMs = Number(values.pause) * 1000;
const connections = Number(values.connections);

interface Build {
  name: string;
  ref: string;
  env: Record<string, string>;
}

/** `name=ref` or `name=ref:KEY=value,KEY2=value`. */
function parseBuild(arg: string): Build {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new Error(`expected name=ref[:ENV=value,…], got ${arg}`);
  const [ref, envs = ''] = arg.slice(eq + 1).split(/:(.*)/s);
  const env: Record<string, string> = {};
  for (const kv of envs.split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    env[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '1' : kv.slice(i + 1);
  }
  return { name: arg.slice(0, eq), ref: ref!, env };
}

/** Extracts `ref` (src, migrations, tsconfigs) under dist/compare/<commit>/ and compiles it there. */
function buildRef(ref: string): string {
  const commit = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: projectRoot, encoding: 'utf8' }).trim();
  const dir = path.join(projectRoot, 'dist/compare', commit.slice(0, 12));
  const server = path.join(dir, 'dist/src/server.js');
  if (existsSync(server)) return server;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['archive', commit, 'src', 'migrations', 'tsconfig.json', 'tsconfig.build.json'], { cwd: projectRoot, maxBuffer: 1 << 30 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  console.log(`building ${ref} (${commit.slice(0, 12)})…`);
  // Under the project, so the build resolves this checkout's node_modules and its own migrations/.
  execFileSync('npx', ['tsc', '-p', path.join(dir, 'tsconfig.build.json')], { cwd: projectRoot, stdio: 'inherit' });
  return server;
}

/** CPU seconds the process's main thread (the event loop) has used, from /proc. */
function mainThreadCpu(pid: number): number {
  const { user, system } = procStat(`/proc/${pid}/task/${pid}/stat`);
  return user + system;
}

interface Server {
  name: string;
  url: string;
  pid: number;
  rps: number[];
  p99: number[];
  cpuUs: number[];
}

async function main() {
  const builds = positionals.map(parseBuild);
  if (builds.length < 1) throw new Error('name at least one build: before=HEAD~1 after=HEAD');
  const scripts = new Map(builds.map((b) => [b.name, buildRef(b.ref)]));
  const bareApp = buildServers();
  const children: ChildProcess[] = [];
  const dataDirs: string[] = [];
  const prefix = `bench-compare-${process.pid}`;
  try {
    const barePort = await freePort();
    const bare = await startChild(process.execPath, [bareApp], { PORT: String(barePort) }, (o) => o.includes('ready'));
    children.push(bare);
    const servers: Server[] = [];
    for (const b of builds) {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'switchboard-compare-'));
      dataDirs.push(dataDir);
      const port = await freePort();
      // NODE_FLAGS in a build's environment: more node/V8 flags, after GATEWAY_NODE_FLAGS (so they win).
      const { NODE_FLAGS: extraFlags = '', ...env } = b.env;
      const gw = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, ...extraFlags.split(' ').filter(Boolean), scripts.get(b.name)!], {
        cwd: projectRoot,
        env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, ADMIN_TOKEN, LOG_LEVEL: 'warn', QUEUE_PREFIX: `${prefix}-${b.name}` },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.push(gw);
      await waitForServer(`http://127.0.0.1:${port}/healthz`, { requireOk: true });
      const hook = await createBenchChannel(port);
      servers.push({ name: b.name, url: `http://127.0.0.1:${port}${hook}`, pid: gw.pid!, rps: [], p99: [], cpuUs: [] });
    }
    const all: Server[] = [{ name: 'bare Hono', url: `http://127.0.0.1:${barePort}/webhooks/bench`, pid: bare.pid!, rps: [], p99: [], cpuUs: [] }, ...servers];
    for (const s of all) {
      await autocannon({ url: s.url, connections: 8, amount: 2000, method: 'POST', requests: [{ setupRequest: (r: any) => ({ ...r, ...signedRequest(`warm-${s.name}`) }) }] });
    }

    console.log(`ingest compare: ${builds.map((b) => `${b.name}=${b.ref}`).join(', ')}; ${rounds} rounds of ${seconds}s each, ${connections} connections, ${pauseMs / 1000}s pauses`);
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 ? [...all].reverse() : all) {
        await new Promise((done) => setTimeout(done, pauseMs));
        const cpuBefore = mainThreadCpu(s.pid);
        const out = await autocannon({
          url: s.url, connections, duration: seconds, method: 'POST',
          requests: [{ setupRequest: (q: any) => ({ ...q, ...signedRequest(`r${r}-${s.name}`) }) }],
        });
        s.rps.push(out.requests.average);
        s.p99.push(out.latency.p99);
        s.cpuUs.push(((mainThreadCpu(s.pid) - cpuBefore) * 1e6) / Math.max(1, out['2xx'] + out.non2xx));
        if (out.non2xx > 0 || out.errors > 0) console.log(`  ${s.name}: ${out.non2xx} non-2xx, ${out.errors} errors`);
      }
      const first = servers[0]!;
      console.log(
        `round ${r + 1}: ` +
          all.map((s) => `${s.name} ${s.rps[r]!.toFixed(0)} req/s (p99 ${s.p99[r]} ms, ${s.cpuUs[r]!.toFixed(0)} µs)`).join('  ') +
          (servers.length > 1 ? `  vs ${first.name}: ${servers.slice(1).map((s) => (s.rps[r]! / first.rps[r]!).toFixed(3)).join(' ')}` : ''),
      );
    }
    console.log('medians');
    for (const s of all) {
      const vsBare = median(s.rps.map((x, i) => x / all[0]!.rps[i]!));
      const vsFirst = median(s.rps.map((x, i) => x / servers[0]!.rps[i]!));
      const wins = s.rps.filter((x, i) => x > servers[0]!.rps[i]!).length;
      console.log(
        `  ${s.name.padEnd(16)} ${median(s.rps).toFixed(0).padStart(6)} req/s  p99 ${median(s.p99)} ms  event loop ${median(s.cpuUs).toFixed(1)} µs/webhook  ` +
          `÷ bare ${vsBare.toFixed(3)}` + (s === all[0] || s === servers[0] ? '' : `  ÷ ${servers[0]!.name} ${vsFirst.toFixed(3)} (faster in ${wins} of ${rounds} rounds)`),
      );
    }
  } finally {
    for (const c of children) await stopChild(c).catch(() => {});
    for (const b of builds) await dropKeysWithPrefix(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', `${prefix}-${b.name}`).catch(() => 0);
    for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
