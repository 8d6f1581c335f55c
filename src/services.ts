import type { Config } from './config.js';
import type { Db } from './db/client.js';
import type { WalSync } from './db/wal-sync.js';
import type { Clock } from './lib/clock.js';
import type { MacEngine } from './lib/crypto.js';
import type { Logger } from './log.js';

/** What every domain service is built from: no HTTP, no queues, just the database and the clock. */
export interface ServiceContext {
  db: Db;
  clock: Clock;
  log: Logger;
  config: Config;
  /** MAC primitives for webhook signatures (node:crypto's in the Node gateway, see src/lib/node-crypto.ts). */
  mac: MacEngine;
  /** Called after a transaction that wrote outbox rows commits, so the relay moves them promptly. */
  notifyOutbox: () => void;
  /**
   * Syncs the database's WAL off the event loop for the group committers of the hot write paths
   * (webhooks, replies, delivery results); null for a database without a WAL file.
   */
  walSync: WalSync | null;
}
