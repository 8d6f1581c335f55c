import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findMigrationsFolder, migrateDb, openDb, type Db } from '../src/db/client.js';
import { removeTempDataDirs, tempDataDir } from './harness.js';
import { expectHoldCountersConsistent } from './invariants.js';

/**
 * Upgrades keep what a running gateway already holds: a database at an earlier migration, with
 * agents holding conversations, gets correct ACD counters and choice-order copies from 0002.
 */

let db: Db | undefined;
afterEach(() => {
  db?.$client.close();
  db = undefined;
  removeTempDataDirs();
});

/** A copy of migrations/ whose journal stops after the first `count` entries. */
function migrationsUpTo(count: number): string {
  const dir = tempDataDir();
  cpSync(findMigrationsFolder(), dir, { recursive: true });
  const journalPath = path.join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, count);
  writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

describe('migration 0002 (hold counters, choice order)', () => {
  it('backfills from the conversations agents hold and the agents’ state', () => {
    const dataDir = tempDataDir();
    db = openDb(dataDir);
    migrateDb(db, migrationsUpTo(2));
    const sql = db.$client;
    sql.exec(`
      INSERT INTO agents (id, name, email, token_hash, status, status_changed_at, online_since, last_assigned_at, load, created_at, updated_at)
        VALUES ('ag_a', 'A', 'a@x.test', 'h1', 'online', 0, 100, 500, 40, 0, 0),
               ('ag_b', 'B', 'b@x.test', 'h2', 'busy', 0, 200, NULL, 0, 0, 0);
      INSERT INTO channels (id, name, conversation_type, provider, webhook_key, messenger, utilization, auto_assign_limit, auto_answer,
          notification_timeout_sec, write_first_enabled, created_at, updated_at)
        VALUES ('ch_1', 'One', 'chat', 'telegram', 'k1', '{}', 20, 5, 1, NULL, 0, 0, 0);
      INSERT INTO channel_agents (channel_id, agent_id) VALUES ('ch_1', 'ag_a'), ('ch_1', 'ag_b');
      INSERT INTO contacts (id, channel_id, provider_contact_id, created_at, updated_at) VALUES ('ct_1', 'ch_1', 'p1', 0, 0);
      INSERT INTO conversations (id, channel_id, contact_id, type, state, agent_id, utilization, created_at, updated_at) VALUES
        ('cv_1', 'ch_1', 'ct_1', 'chat', 'active', 'ag_a', 20, 0, 0),
        ('cv_2', 'ch_1', 'ct_1', 'chat', 'wrapup', 'ag_a', 20, 0, 0),
        ('cv_3', 'ch_1', 'ct_1', 'chat', 'closed', 'ag_a', 20, 0, 0),
        ('cv_4', 'ch_1', 'ct_1', 'chat', 'queued', NULL, NULL, 0, 0);
    `);
    migrateDb(db); // the rest, 0002 included

    expect(sql.prepare('SELECT channel_id, agent_id, held FROM agent_channel_holds').all()).toEqual([
      { channel_id: 'ch_1', agent_id: 'ag_a', held: 2 },
    ]);
    expect(sql.prepare('SELECT agent_id, agent_online, agent_idle_since, agent_load FROM channel_agents ORDER BY agent_id').all()).toEqual([
      { agent_id: 'ag_a', agent_online: 1, agent_idle_since: 500, agent_load: 40 },
      { agent_id: 'ag_b', agent_online: 0, agent_idle_since: 200, agent_load: 0 },
    ]);
    expectHoldCountersConsistent(sql);
  });
});

describe('hand-written triggers', () => {
  it('refuses to start on a database whose migrations lost the agent-state triggers', () => {
    const dataDir = tempDataDir();
    db = openDb(dataDir);
    migrateDb(db);
    db.$client.exec('DROP TRIGGER agents_mirror_update');
    expect(() => migrateDb(db!)).toThrow(/hand-written triggers: agents_mirror_update/);
  });
});
