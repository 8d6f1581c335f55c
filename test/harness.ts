import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterEach, beforeEach } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { buildDeps, closeDeps, type BuildOptions, type Deps } from '../src/deps.js';
import type { WalSync } from '../src/db/wal-sync.js';
import { FakeClock, type Clock } from '../src/lib/clock.js';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { createLogger } from '../src/log.js';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';

/** A per-test queue prefix so tests sharing one Redis never see each other's jobs. */
export function uniquePrefix(): string {
  // SB_TEST_RUN (set by test/global-setup.ts) groups a run's prefixes so its teardown can drop them.
  return `sbtest-${process.env.SB_TEST_RUN ?? process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** The directories tempDataDir() has made in this test file and removeTempDataDirs() has not deleted. */
const madeDirs: string[] = [];

/** A fresh directory under the OS temp dir (deleted by its owner, or by removeTempDataDirs()). */
export function tempDataDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-test-'));
  madeDirs.push(dir);
  return dir;
}

/**
 * Deletes every directory tempDataDir() has made in this test file, for tests that hand theirs to
 * a gateway process or a database: call it once those have stopped or closed (in afterEach).
 */
export function removeTempDataDirs(): void {
  for (const dir of madeDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A fresh tempSqliteFile for each test of the file (made in beforeEach, removed in afterEach). */
export function useTempSqliteFile(name: string, schema = ''): { readonly db: Database.Database; readonly file: string } {
  let current: ReturnType<typeof tempSqliteFile> | null = null;
  beforeEach(() => {
    current = tempSqliteFile(name, schema);
  });
  afterEach(() => current?.remove());
  return {
    get db() {
      return current!.db;
    },
    get file() {
      return current!.file;
    },
  };
}

/** A bare WAL-mode SQLite file in a fresh temp dir, for tests of the SQLite helpers; `remove` closes and deletes it. */
export function tempSqliteFile(name: string, schema = ''): { dir: string; file: string; db: Database.Database; remove(): void } {
  const dir = tempDataDir();
  const file = path.join(dir, name);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  if (schema) db.exec(schema);
  return {
    dir,
    file,
    db,
    remove() {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Collects log lines in memory so tests can assert what was (not) logged. */
export class LogSink extends Writable {
  lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    cb();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    DATA_DIR: tempDataDir(),
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    QUEUE_PREFIX: uniquePrefix(),
    PUBLIC_BASE_URL: 'https://sb.example.test',
    LOG_LEVEL: 'info',
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    ...overrides,
  });
}

export interface Harness {
  deps: Deps;
  config: Config;
  clock: Clock;
  logs: LogSink;
  app: ReturnType<typeof createApp>;
  /** app.request with the admin token and JSON handling. */
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<Response>;
  close(): Promise<void>;
}

/** Real dependencies for one test: a fresh SQLite file with migrations, real Redis, unique prefix. */
export function createHarness(opts: { env?: Record<string, string>; clock?: Clock; fetch?: typeof fetch; fdatasync?: BuildOptions['fdatasync'] } = {}): Harness {
  const config = testConfig(opts.env);
  const logs = new LogSink();
  const clock = opts.clock ?? new FakeClock(Date.now());
  const deps = buildDeps(config, { clock, log: createLogger('debug', logs), ...(opts.fetch ? { fetch: opts.fetch } : {}), fdatasync: opts.fdatasync });
  const app = createApp(deps);
  return {
    deps,
    config,
    clock,
    logs,
    app,
    api(method, p, body, token = TEST_ADMIN_TOKEN) {
      const headers: Record<string, string> = {};
      if (token !== null) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      return Promise.resolve(
        app.request(p, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) }),
      );
    },
    async close() {
      await cleanupQueues(deps);
      await closeDeps(deps);
      rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

async function cleanupQueues(deps: Deps): Promise<void> {
  try {
    await Promise.all([deps.queues.acd.obliterate({ force: true }), deps.queues.deliveries.obliterate({ force: true })]);
  } catch {
    // Redis may be deliberately down in a fault test.
  }
}

export const validWabaMessenger = {
  provider: 'whatsapp_business',
  phoneNumberId: '106540352242922',
  accessToken: 'EAAG-secret-access-token',
  appSecret: 'app-secret-abc123',
  verifyToken: 'verify-me-please',
};

export function channelBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'Support WABA',
    conversationType: 'chat',
    chatbotId: null,
    messenger: { ...validWabaMessenger, phoneNumberId: String(100000 + Math.floor(Math.random() * 1e9)) },
    writeFirst: { enabled: true, channelId: null },
    handling: {
      utilization: 50,
      autoAssignLimit: 2,
      autoAnswer: false,
      notificationTimeoutSec: 30,
      completionCodeIds: [],
      completionCodeTimeoutSec: null,
    },
    agentIds: [],
    ...overrides,
  };
}

export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** A WhatsApp Business webhook body with one text message `id` from `from`, to `phoneNumberId`. */
export function wabaTextBody(id: string, from: string, phoneNumberId: string): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '1', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '1555', phone_number_id: phoneNumberId },
      contacts: [{ profile: { name: 'Ana' }, wa_id: from }],
      messages: [{ from, id, timestamp: '1767225600', type: 'text', text: { body: 'hi' } }],
    } }] }],
  });
}

/** Posts `body` to a WABA channel's webhook URL, signed with `appSecret` as Meta signs it. */
export async function postSignedWaba(h: Harness, webhookUrl: string, appSecret: string, body: string): Promise<Response> {
  const sig = bytesToHex(await hmac('SHA-256', appSecret, body));
  return h.app.request(new URL(webhookUrl).pathname, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${sig}` },
    body,
  });
}

/**
 * The real WAL sync with a gate in front: each sync() waits until the test opens it (or fails it),
 * so a test can look at the database while a sync is in flight. The fdatasync itself is real.
 */
export function gatedWalSync(real: WalSync) {
  const waiting: Array<(err: Error | null) => void> = [];
  let calls = 0;
  return {
    calls: () => calls,
    inFlight: () => waiting.length,
    /** Lets the oldest waiting sync run (or fail with `err` without syncing). */
    open(err: Error | null = null) {
      const done = waiting.shift();
      if (!done) throw new Error('no sync in flight');
      if (err) done(err);
      else real.sync(done);
    },
    sync: {
      sync(done: (err: Error | null) => void) {
        calls++;
        waiting.push(done);
      },
      failure: () => real.failure(),
      close: () => real.close(),
    } satisfies WalSync,
  };
}
