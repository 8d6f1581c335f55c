import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as schema from './schema.js';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

export const DB_FILE_NAME = 'switchboard.sqlite';

/** Finds `migrations/` from this file upwards, so it works from `src/` (tsx) and `dist/src/` (built). */
export function findMigrationsFolder(start = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const candidate = path.join(dir, 'migrations');
    if (existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`migrations/ not found above ${start}`);
    dir = parent;
  }
}

/**
 * Opens the SQLite file in `dataDir` with WAL, foreign keys on, full sync (an acknowledged
 * webhook survives a power cut; group commit amortizes the fsync), and a busy timeout so two
 * processes on one file wait for each other instead of failing. The page cache is 64 MiB instead
 * of SQLite's 2 MiB default: the hot indexes (queues, agents, hold counters) stay in memory.
 * Temporary storage is in memory: statement journals (savepoints) and sort b-trees otherwise
 * spill to unlinked temp files, a write syscall per page.
 */
export function openDb(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true });
  const sqlite = new Database(path.join(dataDir, DB_FILE_NAME));
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 10000');
  sqlite.pragma('cache_size = -65536');
  sqlite.pragma('temp_store = MEMORY');
  return drizzle(sqlite, { schema, casing: 'snake_case' }) as Db;
}

/**
 * Triggers written by hand in migration 0002 (drizzle's schema does not know them) keep the
 * channel_agents copies of agent state current. A later migration that rebuilds a table would
 * drop them silently, so wherever those copies exist the triggers are checked after migrating.
 */
const HAND_WRITTEN_TRIGGERS = ['agents_mirror_insert', 'agents_mirror_update'];

export function migrateDb(db: Db, migrationsFolder = findMigrationsFolder()): void {
  migrate(db, { migrationsFolder });
  const hasCopies = db.$client.prepare("SELECT 1 FROM pragma_table_info('channel_agents') WHERE name = 'agent_online'").get();
  if (!hasCopies) return;
  const present = new Set(
    db.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").pluck().all() as string[],
  );
  const missing = HAND_WRITTEN_TRIGGERS.filter((t) => !present.has(t));
  if (missing.length > 0) throw new Error(`migrations left out hand-written triggers: ${missing.join(', ')}`);
}
