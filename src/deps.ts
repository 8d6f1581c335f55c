import { chmodSync, existsSync, type fdatasync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createAcdService } from './acd/service.js';
import { createAgentService } from './agents/service.js';
import { createCatalogService } from './channels/catalog-service.js';
import { createChannelService } from './channels/service.js';
import { createIngestService } from './ingest/service.js';
import { createConversationService } from './conversations/service.js';
import { createOutboundService } from './outbound/service.js';
import type { Config } from './config.js';
import { startCheckpointer, type Checkpointer } from './db/checkpointer.js';
import { createWalSync, type WalSync } from './db/wal-sync.js';
import { migrateDb, openDb, type Db } from './db/client.js';
import { randomToken } from './lib/crypto.js';
import type { MacEngine } from './lib/crypto.js';
import { nodeMac } from './lib/node-crypto.js';
import { createNodeFetch } from './lib/node-fetch.js';
import { systemClock, type Clock } from './lib/clock.js';
import { createLogger, type Logger } from './log.js';
import { createAgentEventHub, type AgentEventHub } from './queue/agent-events.js';
import { QUEUE_ACD, QUEUE_DELIVERIES } from './queue/names.js';
import { createOutboxRelay, type OutboxRelay } from './queue/relay.js';
import { createInboundRetention, type InboundRetention } from './ingest/retention.js';
import type { ServiceContext } from './services.js';

/** Everything the app and the workers use, built once. The one place clients are constructed. */
export interface Deps {
  config: Config;
  adminToken: string;
  db: Db;
  /** WAL checkpoints on a worker thread (src/db/checkpointer.ts). */
  checkpointer: Checkpointer;
  /** Syncs the WAL off the event loop for the group committers and the outbox relay (src/db/wal-sync.ts). */
  walSync: WalSync | null;
  log: Logger;
  clock: Clock;
  fetch: typeof fetch;
  /** MAC primitives for signature checks (Web Crypto's interface, node:crypto's speed). */
  mac: MacEngine;
  /** Producer connection: fails fast when Redis is down (the outbox keeps the work). */
  redis: Redis;
  queues: { acd: Queue; deliveries: Queue };
  relay: OutboxRelay;
  /** Deletes inbound_events rows past INBOUND_EVENTS_RETENTION (src/ingest/retention.ts); started with the server. */
  retention: InboundRetention;
  /** Agent events (offers, timeouts…) from every process, for SSE streams. */
  events: AgentEventHub;
  services: ReturnType<typeof buildServices>;
  checkReadiness(): Promise<Record<'sqlite' | 'redis', 'ok' | string>>;
}

export interface BuildOptions {
  clock?: Clock;
  log?: Logger;
  fetch?: typeof fetch;
  /** Defaults to node:crypto's engine; tests may pass webCryptoMac. */
  mac?: MacEngine;
  /** The WAL's fdatasync (node:fs's); fault tests pass one that fails like a dying disk. */
  fdatasync?: typeof fdatasync;
}

function buildServices(ctx: ServiceContext) {
  return {
    agents: createAgentService(ctx),
    catalog: createCatalogService(ctx),
    channels: createChannelService(ctx),
    ingest: createIngestService(ctx),
    conversations: createConversationService(ctx),
    acd: createAcdService(ctx),
    outbound: createOutboundService(ctx),
  };
}

export const ADMIN_TOKEN_FILE = 'admin-token';

/**
 * ADMIN_TOKEN from the environment, or the one kept in the data dir, or a new one written there
 * (mode 0600). `generated` is true only on the start that created it, so it is printed once.
 */
export function resolveAdminToken(config: Config): { token: string; generated: boolean } {
  if (config.adminToken) return { token: config.adminToken, generated: false };
  mkdirSync(config.dataDir, { recursive: true });
  const file = path.join(config.dataDir, ADMIN_TOKEN_FILE);
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), generated: false };
  const token = `sbadm_${randomToken(32)}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { token, generated: true };
}

export function createRedis(url: string, opts: { failFast: boolean; name?: string }): Redis {
  return new Redis(url, {
    // CLIENT LIST shows it (ops, and tests that cut one connection); kept across reconnects.
    ...(opts.name ? { connectionName: opts.name } : {}),
    // Workers block on Redis and must retry forever; producers fail fast and leave work in the outbox.
    maxRetriesPerRequest: opts.failFast ? 1 : null,
    enableOfflineQueue: !opts.failFast,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(200 * times, 2_000),
    lazyConnect: false,
  });
}

export function buildDeps(config: Config, opts: BuildOptions = {}): Deps {
  const log = opts.log ?? createLogger(config.logLevel);
  const clock = opts.clock ?? systemClock;
  const { token: adminToken } = resolveAdminToken(config);
  const db = openDb(config.dataDir);
  migrateDb(db);
  const checkpointer = startCheckpointer(db.$client, {
    onError: (err) => log.error({ err }, 'WAL checkpointer thread failed; the commit-time checkpoint takes over'),
  });

  const redis = createRedis(config.redisUrl, { failFast: true });
  // ioredis reports every failed reconnect; readiness and the relay already say it, once.
  redis.on('error', () => {});
  const queueOpts = { connection: redis, prefix: config.queuePrefix };
  const queues = { acd: new Queue(QUEUE_ACD, queueOpts), deliveries: new Queue(QUEUE_DELIVERIES, queueOpts) };
  for (const q of Object.values(queues)) q.on('error', () => {});

  const walSync = createWalSync(db.$client, { fdatasync: opts.fdatasync });
  const relay = createOutboxRelay({
    db,
    walSync,
    clock,
    log: log.child({ component: 'outbox-relay' }),
    targets: { acdQueue: queues.acd, deliveriesQueue: queues.deliveries, publisher: redis, queuePrefix: config.queuePrefix },
  });

  const mac = opts.mac ?? nodeMac;
  const ctx: ServiceContext = { db, clock, log, config, mac, notifyOutbox: () => relay.notify(), walSync };

  return {
    config,
    adminToken,
    db,
    checkpointer,
    walSync,
    log,
    clock,
    // Provider sends: node:http keep-alive pools (undici's fetch costs ~3× the CPU per request).
    fetch: opts.fetch ?? createNodeFetch(),
    mac,
    redis,
    queues,
    relay,
    retention: createInboundRetention(db.$client, {
      clock,
      log: log.child({ component: 'inbound-retention' }),
      keepMs: config.inboundEventsRetentionMs,
    }),
    events: createAgentEventHub({
      connect: () => createRedis(config.redisUrl, { failFast: false, name: `${config.queuePrefix}:agent-events` }),
      prefix: config.queuePrefix,
      log,
    }),
    services: buildServices(ctx),
    async checkReadiness() {
      const result: Record<'sqlite' | 'redis', string> = { sqlite: 'ok', redis: 'ok' };
      try {
        db.$client.prepare('select 1').get();
        const failed = walSync?.failure();
        if (failed) result.sqlite = failed.message;
      } catch (err) {
        result.sqlite = (err as Error).message;
      }
      try {
        if (redis.status !== 'ready') {
          await withTimeout(new Promise((resolve) => redis.once('ready', resolve)), 1_000, `not connected (${redis.status})`);
        }
        await withTimeout(redis.ping(), 1_000, 'ping timed out');
      } catch (err) {
        result.redis = (err as Error).message;
      }
      return result;
    },
  };
}

export async function closeDeps(deps: Deps): Promise<void> {
  await deps.relay.stop();
  await deps.retention.stop();
  await deps.events.close();
  await Promise.allSettled([deps.queues.acd.close(), deps.queues.deliveries.close()]);
  deps.redis.disconnect();
  await Promise.all([deps.services.ingest.flush(), deps.services.outbound.flush()]);
  deps.walSync?.close();
  await deps.checkpointer.close();
  deps.db.$client.close();
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(message)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
