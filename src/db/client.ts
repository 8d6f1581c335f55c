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
 * webhook survives a power cut; group commit amortizes the fsync and does it off the event loop,
 * see src/ingest/group-commit.ts), and a busy timeout so two
 * processes on one file wait for each other instead of failing. Temporary storage is in memory:
 * statement journals (savepoints) and sort b-trees otherwise spill to unlinked temp files, a
 * write syscall per page.
 *
 * The page cache is 4 MiB (SQLite's default is 2 MiB): room for the hot index pages (queues,
 * agents, hold counters, the contact and conversation lookups), and deliberately not more. While the
 * database is under 1 GiB, every COMMIT after a b-tree rebalance walks the whole page cache:
 * the rebalance parks a page at the lock-byte page number (262,145 for 4 KiB pages) for a moment,
 * which raises the cache's highest key past the database's size, and the end of the transaction
 * then truncates the cache to that size by scanning every hash bucket and page (pcache1Truncate,
 * seen with gdb and perf on the ingest path). With a 64 MiB cache that scan grew with the cache
 * to most of a millisecond per commit.
 *
 * Reads of pages the cache lacks come from a read-only memory map of the file (up to 256 MiB)
 * instead of a pread syscall each (pages whose newest copy is in the WAL are still read from
 * there). On the ingest bench, 10 s rounds: +7.7% webhooks/s, event loop 92 -> 86 us per webhook,
 * faster in 4 of 4 paired rounds (scripts/bench/ingest-compare.ts). The map is SQLite's, read
 * only (writes go through the WAL as before). With misses that cheap, a smaller cache won: 4 MiB
 * against 8 MiB was +5% webhooks/s in 5 of 5 paired rounds (3 MiB +7%, 2 MiB and 1 MiB +5%);
 * before the map, 2 MiB had lost 5.5% against 8.
 */
export function openDb(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true });
  const sqlite = new Database(path.join(dataDir, DB_FILE_NAME));
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 10000');
  sqlite.pragma('cache_size = -4096');
  sqlite.pragma('mmap_size = 268435456');
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
