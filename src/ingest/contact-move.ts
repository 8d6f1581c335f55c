import type Database from 'better-sqlite3';

/**
 * Moving a contact to a new provider id, inside the caller's transaction. Today one thing moves a
 * contact: a Telegram group that became a supergroup (the old chat's `migrate_to_chat_id`, the new
 * one's `migrate_from_chat_id`, or a send refused with `migrate_to_chat_id`). The contact is the
 * chat, so it takes the new id and keeps its conversations; the old id stays behind as an alias
 * (contact_aliases), so a late message from the old chat or a write-first to it finds the contact
 * instead of making a second one.
 */

export type MoveOutcome =
  /** The contact now has the new id. */
  | 'moved'
  /** Nothing to do: it has moved before (the second of Telegram's two notices), or from = to. */
  | 'already'
  /** No contact by the old id: nothing to move. */
  | 'unknown'
  /**
   * The new id is a contact with conversations of its own (someone wrote in the new chat before
   * the move was known): both stay as they are; merging two sets of open conversations is an
   * agent's call, not ours.
   */
  | 'kept-apart';

interface ContactRef {
  id: string;
  reachable: number;
  reachableAt: number | null;
}

export function createContactMover(sqlite: Database.Database) {
  const q = {
    byProviderId: sqlite.prepare('SELECT id, reachable, reachable_at AS reachableAt FROM contacts WHERE channel_id = ? AND provider_contact_id = ?'),
    alias: sqlite.prepare('SELECT contact_id FROM contact_aliases WHERE channel_id = ? AND provider_contact_id = ?').pluck(),
    hasConversation: sqlite.prepare('SELECT 1 FROM conversations WHERE contact_id = ? LIMIT 1').pluck(),
    repointAliases: sqlite.prepare('UPDATE contact_aliases SET contact_id = ? WHERE contact_id = ?'),
    deleteContact: sqlite.prepare('DELETE FROM contacts WHERE id = ?'),
    move: sqlite.prepare('UPDATE contacts SET provider_contact_id = ?, reachable = ?, reachable_at = ?, updated_at = ? WHERE id = ?'),
    addAlias: sqlite.prepare(
      `INSERT INTO contact_aliases (channel_id, provider_contact_id, contact_id, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (channel_id, provider_contact_id) DO UPDATE SET contact_id = excluded.contact_id`,
    ),
  };

  return {
    /** The id of the contact that `providerContactId` (an id it had before a move) stands for now. */
    aliasOf(channelId: string, providerContactId: string): string | undefined {
      return q.alias.get(channelId, providerContactId) as string | undefined;
    },

    /** Moves the contact known as `from` to `to` (see MoveOutcome). */
    move(channelId: string, from: string, to: string, now: number): MoveOutcome {
      if (from === to) return 'already';
      const old = q.byProviderId.get(channelId, from) as ContactRef | undefined;
      if (!old) return q.alias.get(channelId, from) !== undefined ? 'already' : 'unknown';
      let { reachable, reachableAt } = old;
      const target = q.byProviderId.get(channelId, to) as ContactRef | undefined;
      if (target) {
        if (q.hasConversation.get(target.id) !== undefined) return 'kept-apart';
        // A contact without conversations (a my_chat_member for the new chat came first): it is
        // the same chat, so it is absorbed, its reachability kept when it is the newer one.
        if ((target.reachableAt ?? -Infinity) > (reachableAt ?? -Infinity)) ({ reachable, reachableAt } = target);
        q.repointAliases.run(old.id, target.id);
        q.deleteContact.run(target.id);
      }
      q.move.run(to, reachable, reachableAt, now, old.id);
      q.addAlias.run(channelId, from, old.id, now);
      return 'moved';
    },
  };
}

export type ContactMover = ReturnType<typeof createContactMover>;
