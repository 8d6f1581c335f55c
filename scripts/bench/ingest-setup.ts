/**
 * What the ingest benchmarks share (scripts/bench/ingest.ts for requests/s and latency,
 * scripts/bench/ingest-instructions.ts for instructions per request): building both servers as
 * plain JavaScript, the signed WhatsApp Business payloads, and the bench channel.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { projectRoot } from '../../test/process.js';

/**
 * The V8 flags the gateway ships with: `scripts/start.sh` and the Dockerfile pass the same
 * (test/node-flags.test.ts holds them together), so the benches run it as it runs in production.
 * A 32 MiB young generation instead of V8's default 16 MiB: a webhook allocates its parsed body,
 * the schema's copy of it and the normalized events, all dead by the response, and with the bigger
 * nursery fewer of them live through a scavenge. Paired rounds (ingest-compare.ts): +19% webhooks/s,
 * event loop 90.5 -> 77.3 µs per webhook, faster in 4 of 4 rounds (24 MiB: +15%; 64 MiB: +5%).
 * The bare app gained nothing from it (29–32k req/s either way), so it keeps Node's defaults.
 */
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=32'];

export const APP_SECRET = 'bench-app-secret';
export const PHONE_ID = '106540352242922';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789';

/**
 * Both servers run as plain JavaScript, the way the gateway ships (`npm start` and the Docker image
 * run `node dist/src/server.js`): the gateway from dist/ (built here when stale) and the bare app
 * compiled the same way. Under tsx every closure creation also pays esbuild's keepNames helper.
 * Returns the bare app's script; the gateway's is `dist/src/server.js`.
 */
export function buildServers(): string {
  execFileSync('bash', ['scripts/build-if-stale.sh'], { cwd: projectRoot, stdio: 'inherit' });
  const source = readFileSync(path.join(projectRoot, 'scripts/bench/bare-app.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  const out = path.join(projectRoot, 'dist/bench/bare-app.js'); // under dist/ so it resolves hono from node_modules
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, outputText);
  return out;
}

/** Spawns `command args` in the project and resolves once its output satisfies `ready`. */
export function startChild(command: string, args: string[], env: Record<string, string>, ready: (out: string) => boolean): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (ready(out)) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}:\n${out}`)));
  });
}

let seq = 0;
/** A signed WABA text webhook with a unique message id, from one of 5,000 senders in turn. */
export function signedRequest(runTag: string) {
  const n = seq++;
  const from = String(4915100000000 + (n % 5000));
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '15550001111', phone_number_id: PHONE_ID },
      contacts: [{ profile: { name: `Customer ${n % 5000}` }, wa_id: from }],
      messages: [{ from, id: `wamid.${runTag}.${n}`, timestamp: '1767225600', type: 'text', text: { body: `Is my order ${n} shipped?` } }],
    } }] }],
  });
  const sig = createHmac('sha256', APP_SECRET).update(body).digest('hex');
  return { body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${sig}` } };
}

/**
 * Polls `url` until it answers (with 2xx when `requireOk`). The gateway's /healthz needs 2xx; the
 * bare app has no health route, so any answer will do there. LOG_LEVEL=warn hides the gateway's
 * listening line, so there is no output to wait for.
 */
export async function waitForServer(url: string, { requireOk = false, tries = 100, everyMs = 100 } = {}): Promise<void> {
  for (let i = 0; i < tries; i++) {
    try {
      const res = await fetch(url);
      if (res.ok || !requireOk) return;
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`${url} did not answer`);
}

/** Stops a child with SIGTERM and waits until it has exited (at once if it already has). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return; // exited, or killed by a signal
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Creates the bench's WABA channel through the admin API; returns its webhook path. */
export async function createBenchChannel(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/api/channels`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      name: 'Bench', conversationType: 'chat',
      messenger: { provider: 'whatsapp_business', phoneNumberId: PHONE_ID, accessToken: 't', appSecret: APP_SECRET, verifyToken: 'v' },
      handling: { utilization: 10, autoAssignLimit: 1, autoAnswer: true },
    }),
  });
  if (!res.ok) throw new Error(`creating the bench channel: ${res.status} ${await res.text()}`);
  const channel = (await res.json()) as { webhookUrl: string };
  return new URL(channel.webhookUrl).pathname;
}

/**
 * A process's or thread's name and CPU seconds so far (user, system), from a `/proc/…/stat` file
 * (`/proc/<pid>/stat` for all threads, `/proc/<pid>/task/<tid>/stat` for one). The name is in
 * parentheses and may itself hold spaces or parentheses, so the fields are counted from the last ')'.
 */
export function procStat(file: string): { name: string; user: number; system: number } {
  const stat = readFileSync(file, 'utf8');
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // utime and stime, in clock ticks (USER_HZ = 100).
  return { name: stat.slice(stat.indexOf('(') + 1, close), user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
