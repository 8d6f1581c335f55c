/**
 * Replays failed deliveries by filter, through the same service as `POST /api/deliveries/replay`.
 *
 *   npx tsx scripts/replay.ts --status dead --channel ch_… --since 2h [--until 30m] [--error-code 131026] [--limit 500] [--dry-run]
 *
 * Reads DATA_DIR (the SQLite file) and REDIS_URL / QUEUE_PREFIX from the environment like the
 * gateway. Replays are committed to SQLite with their outbox rows, then handed to Redis right away
 * when it answers; otherwise the running gateway's outbox relay queues them. A sent delivery is
 * never replayed. Exit codes: 0 done, 1 failed, 2 bad arguments or configuration.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { ConfigError, loadConfig } from '../src/config.js';
import { DB_FILE_NAME, migrateDb, openDb } from '../src/db/client.js';
import { createWalSync } from '../src/db/wal-sync.js';
import { createRedis, withTimeout } from '../src/deps.js';
import { AppError } from '../src/errors.js';
import { systemClock } from '../src/lib/clock.js';
import { nodeMac } from '../src/lib/node-crypto.js';
import { createLogger } from '../src/log.js';
import { replayableStatuses, REPLAY_LIMIT_DEFAULT, type ReplayableStatus } from '../src/outbound/ops.js';
import { createOutboundService } from '../src/outbound/service.js';
import { QUEUE_ACD, QUEUE_DELIVERIES } from '../src/queue/names.js';
import { createOutboxRelay } from '../src/queue/relay.js';

const usage = `Usage: tsx scripts/replay.ts [options]
  --status <dead|retrying|pending>  which deliveries (default dead; sent ones are never replayed)
  --channel <ch_…>                  only this sending channel
  --since <when>                    created at or after: 2h, 30m, 1d (before now), ISO date, or unix ms
  --until <when>                    created at or before (same forms)
  --error-code <code>               only this last error code (131026, 429, http_503, network…)
  --limit <n>                       replay at most n, oldest first (default ${REPLAY_LIMIT_DEFAULT})
  --dry-run                         count the matches, change nothing
  -h, --help`;

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        status: { type: 'string', default: 'dead' },
        channel: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        'error-code': { type: 'string' },
        limit: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n${usage}`);
  }
  if (args.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  if (!replayableStatuses.includes(args.status as ReplayableStatus)) {
    fail(`--status must be one of ${replayableStatuses.join(', ')} (sent deliveries are never replayed)`);
  }
  const limit = args.limit === undefined ? REPLAY_LIMIT_DEFAULT : Number(args.limit);
  if (!Number.isSafeInteger(limit) || limit < 1) fail('--limit must be a positive integer');

  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  // As for the gateway, an empty value counts as unset.
  const log = createLogger(process.env.LOG_LEVEL || 'warn');
  // Only an existing database: a mistyped DATA_DIR must not leave a new, empty one behind.
  if (!existsSync(path.join(config.dataDir, DB_FILE_NAME))) fail(`no database at ${path.join(config.dataDir, DB_FILE_NAME)} (check DATA_DIR)`);
  const db = openDb(config.dataDir);
  migrateDb(db);
  const outbound = createOutboundService({ db, clock: systemClock, log, config, mac: nodeMac, notifyOutbox: () => {}, walSync: null });

  const filter = {
    status: args.status as ReplayableStatus,
    channelId: args.channel,
    since: args.since,
    until: args.until,
    errorCode: args['error-code'],
  };
  const described = Object.entries(filter)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

  let result;
  try {
    if (args['dry-run']) {
      result = outbound.replayDeliveries(filter, { dryRun: true });
      process.stdout.write(`dry run: ${result.matched} deliveries match (${described}); at most ${Math.min(result.matched, limit)} would be replayed (attempts in flight are skipped)\n`);
      db.$client.close();
      return;
    }
    const tty = process.stderr.isTTY;
    result = outbound.replayDeliveries(filter, {
      limit,
      onProgress(done, total) {
        const line = `replayed ${done}/${total} (${Math.floor((done / total) * 100)}%)`;
        process.stderr.write(tty ? `\r${line}` : `${line}\n`);
      },
    });
    if (tty && result.replayed > 0) process.stderr.write('\n');
  } catch (err) {
    if (err instanceof AppError) fail(err.message);
    throw err;
  }
  process.stdout.write(`${result.matched} deliveries match (${described}); replayed ${result.replayed}\n`);

  if (result.replayed > 0) await handOver(config, db, log);
  db.$client.close();
}

/** Moves the committed outbox rows to Redis now; when Redis does not answer, the gateway's relay will. */
async function handOver(config: ReturnType<typeof loadConfig>, db: ReturnType<typeof openDb>, log: ReturnType<typeof createLogger>) {
  const redis = createRedis(config.redisUrl, { failFast: true });
  redis.on('error', () => {});
  const opts = { connection: redis, prefix: config.queuePrefix };
  const acdQueue = new Queue(QUEUE_ACD, opts);
  const deliveriesQueue = new Queue(QUEUE_DELIVERIES, opts);
  acdQueue.on('error', () => {});
  deliveriesQueue.on('error', () => {});
  // The gateway's own commits may not be synced yet: the relay syncs the WAL before handing over.
  const walSync = createWalSync(db.$client);
  const relay = createOutboxRelay({
    db,
    clock: systemClock,
    log,
    targets: { acdQueue, deliveriesQueue, publisher: redis, queuePrefix: config.queuePrefix },
    walSync,
  });
  try {
    const moved = await withTimeout(relay.drain(), 5_000, 'Redis did not answer within 5 s');
    process.stdout.write(`queued ${moved} jobs in Redis; the gateway's workers send them\n`);
  } catch (err) {
    process.stdout.write(
      `replays are committed; Redis is not reachable (${(err as Error).message}), so the gateway's outbox relay will queue them\n`,
    );
  } finally {
    await Promise.allSettled([acdQueue.close(), deliveriesQueue.close()]);
    redis.disconnect();
    walSync?.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`replay failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
