/**
 * Telegram Bot API `Update` → NormalizedEvent[]. Shapes: PROTOCOLS.md §2.2.
 * Lenient with fields we do not use; strict on ids, dates and the sub-object of the handled kind.
 * Throws only SchemaError.
 *
 * Message ids: Telegram's `message_id` is unique only inside one chat, and messages are deduped per
 * channel on providerMessageId, so ids are chat-scoped: `<chat_id>:<message_id>` (see
 * `telegramMessageRef`), edits `edit:<chat_id>:<message_id>:<edit_date>`, callbacks `cbq:<id>`.
 */
import { z } from 'zod';
import { clip, compact, joinName, nonEmpty, parseOrThrow, type NormalizeOptions, type PathSegment } from '../helpers.js';
import type { MessageKind, NormalizeResult, NormalizedContact, NormalizedEvent } from '../types.js';

const intSchema = z.number().int();
const dateSchema = z.number().int().min(0);

const userSchema = z.object({
  id: intSchema,
  first_name: z.string().optional(),
  last_name: z.string().optional(),
  username: z.string().optional(),
});
type TgUser = z.infer<typeof userSchema>;

const chatSchema = z.object({
  id: intSchema,
  type: z.string(),
  title: z.string().optional(),
  username: z.string().optional(),
  first_name: z.string().optional(),
  last_name: z.string().optional(),
});
type TgChat = z.infer<typeof chatSchema>;

const messageSchema = z.object({
  message_id: intSchema,
  chat: chatSchema,
  date: dateSchema,
  from: userSchema.optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
  edit_date: dateSchema.optional(),
  message_thread_id: intSchema.optional(),
  reply_to_message: z.object({ message_id: intSchema, chat: z.object({ id: intSchema }).optional() }).optional(),
  forward_origin: z.unknown().optional(),
  forward_date: z.unknown().optional(),
  migrate_to_chat_id: intSchema.optional(),
  migrate_from_chat_id: intSchema.optional(),
});
type TgMessage = z.infer<typeof messageSchema>;

const fileSchema = z.object({
  file_id: z.string().min(1),
  file_unique_id: z.string().optional(),
  file_name: z.string().optional(),
  mime_type: z.string().optional(),
  file_size: z.number().optional(),
  duration: z.number().optional(),
});
const photoSchema = z.array(fileSchema.extend({ width: z.number().optional(), height: z.number().optional() })).min(1);
const stickerSchema = fileSchema.extend({ emoji: z.string().optional(), set_name: z.string().optional() });
const contactSchema = z.object({
  phone_number: z.string(),
  first_name: z.string().optional(),
  last_name: z.string().optional(),
  user_id: intSchema.optional(),
  vcard: z.string().optional(),
});
const locationSchema = z.object({ latitude: z.number(), longitude: z.number() });

const callbackSchema = z.object({
  id: z.string().min(1),
  from: userSchema,
  message: z.object({ message_id: intSchema, chat: chatSchema, date: dateSchema.optional() }).optional(),
  inline_message_id: z.string().optional(),
  chat_instance: z.string().optional(),
  data: z.string().optional(),
  game_short_name: z.string().optional(),
});

const chatMemberUpdateSchema = z.object({
  chat: chatSchema,
  from: userSchema.optional(),
  date: dateSchema,
  new_chat_member: z.object({ status: z.string() }),
});

const updateSchema = z.looseObject({ update_id: intSchema });

/** Update kinds we handle, in the order a (non-conformant) multi-kind update is looked at. */
const handledKinds = ['message', 'edited_message', 'callback_query', 'my_chat_member'] as const;

/** Message content keys, in the order they decide the kind. */
const contentKinds = ['text', 'photo', 'document', 'voice', 'audio', 'video', 'video_note', 'sticker', 'contact', 'location'] as const;

/**
 * A Telegram chat id spelled one way (Telegram reads `0700` as `700`), or null when `value` is not
 * an integer: write-first recipients and the new id of a group that became a supergroup.
 */
export function telegramChatId(value: string): string | null {
  return /^-?\d{1,20}$/.test(value) ? BigInt(value).toString() : null;
}

/** The providerMessageId of a Telegram message: chat-scoped, since message_id is unique per chat only. */
export function telegramMessageRef(chatId: number | string, messageId: number | string): string {
  return `${chatId}:${messageId}`;
}

/** The Bot API `message_id` (for reply_parameters) in a `telegramMessageRef`, or null. */
export function parseTelegramMessageRef(ref: string): { chatId: string; messageId: number } | null {
  const m = /^(-?\d+):(\d+)$/.exec(ref);
  return m?.[1] !== undefined && m[2] !== undefined ? { chatId: m[1], messageId: Number(m[2]) } : null;
}

/** Normalizes a Telegram Update. `dedupeKey` = `update:<update_id>`. */
export function normalizeTelegram(payload: unknown, opts: NormalizeOptions = {}): NormalizeResult {
  const update = parseOrThrow(updateSchema, payload);
  const dedupeKey = `update:${update.update_id}`;
  const kind = handledKinds.find((k) => Object.hasOwn(update, k) && update[k] !== undefined);
  const body = kind === undefined ? undefined : update[kind];

  switch (kind) {
    case 'message':
      return { dedupeKey, events: [normalizeMessage(parseOrThrow(messageSchema, body, [kind]), body, [kind])] };
    case 'edited_message':
      return { dedupeKey, events: [normalizeEdit(parseOrThrow(messageSchema, body, [kind]), body, [kind])] };
    case 'callback_query':
      return { dedupeKey, events: [normalizeCallback(parseOrThrow(callbackSchema, body, [kind]), opts)] };
    case 'my_chat_member': {
      const m = parseOrThrow(chatMemberUpdateSchema, body, [kind]);
      const status = m.new_chat_member.status;
      return {
        dedupeKey,
        events: [
          {
            type: 'reachability',
            contact: contactFromChat(m.chat, m.from),
            reachable: status !== 'kicked' && status !== 'left',
            at: m.date * 1000,
          },
        ],
      };
    }
    default: {
      const other = Object.keys(update).find((k) => k !== 'update_id');
      const reason = other === undefined ? 'update carries no content' : `update kind "${clip(other)}" not handled`;
      return { dedupeKey, events: [{ type: 'ignored', reason }] };
    }
  }
}

function normalizeMessage(msg: TgMessage, raw: unknown, path: PathSegment[]): NormalizedEvent {
  // A group that became a supergroup: Telegram says so in both chats. Either moves the contact.
  if (msg.migrate_to_chat_id !== undefined) {
    return { type: 'moved', contact: contactFromChat(msg.chat, msg.from), to: String(msg.migrate_to_chat_id), at: msg.date * 1000 };
  }
  if (msg.migrate_from_chat_id !== undefined) {
    const { providerContactId: _new, ...names } = contactFromChat(msg.chat, msg.from);
    return { type: 'moved', contact: { providerContactId: String(msg.migrate_from_chat_id), ...names }, to: String(msg.chat.id), at: msg.date * 1000 };
  }
  const rawMsg = raw as Record<string, unknown>;
  const content = contentKinds.find((k) => Object.hasOwn(rawMsg, k) && rawMsg[k] !== undefined);
  // A service message (the bot added to a group, a member leaving, a new title, a pin…) is nobody
  // writing to us: recorded as ignored, it opens no conversation for an agent.
  const service = content === undefined ? serviceMessageKeys.find((k) => Object.hasOwn(rawMsg, k) && rawMsg[k] !== undefined) : undefined;
  if (service !== undefined) {
    return { type: 'ignored', reason: `service message "${service}"`, dedupeKey: telegramMessageRef(msg.chat.id, msg.message_id) };
  }
  const sub = content === undefined ? undefined : rawMsg[content];
  const at = [...path, content ?? ''];
  let kind: MessageKind;
  let text: string | null = msg.caption ?? null;
  let details: Record<string, unknown> = {};

  switch (content) {
    case 'text':
      kind = 'text';
      text = msg.text ?? null;
      break;
    case 'photo': {
      const sizes = parseOrThrow(photoSchema, sub, at);
      const largest = sizes[sizes.length - 1]!;
      kind = 'image';
      details = compact({ fileId: largest.file_id, fileUniqueId: largest.file_unique_id, width: largest.width, height: largest.height });
      break;
    }
    case 'document':
    case 'voice':
    case 'audio':
    case 'video':
    case 'video_note': {
      const f = parseOrThrow(fileSchema, sub, at);
      kind = content === 'video_note' ? 'video' : content;
      details = compact({
        fileId: f.file_id,
        fileUniqueId: f.file_unique_id,
        mimeType: f.mime_type,
        filename: f.file_name,
        fileSize: f.file_size,
        duration: f.duration,
        videoNote: content === 'video_note' ? true : undefined,
      });
      break;
    }
    case 'sticker': {
      const s = parseOrThrow(stickerSchema, sub, at);
      kind = 'sticker';
      text = nonEmpty(s.emoji) ?? null;
      details = compact({ fileId: s.file_id, fileUniqueId: s.file_unique_id, emoji: s.emoji, setName: s.set_name });
      break;
    }
    case 'contact': {
      // A shared contact card, possibly the sender's own number: never the sender's phone.
      const c = parseOrThrow(contactSchema, sub, at);
      kind = 'contacts';
      text = joinName(c.first_name, c.last_name) ?? c.phone_number;
      details = compact({ phoneNumber: c.phone_number, firstName: c.first_name, lastName: c.last_name, userId: c.user_id, vcard: c.vcard });
      break;
    }
    case 'location': {
      const l = parseOrThrow(locationSchema, sub, at);
      kind = 'location';
      text = `${l.latitude},${l.longitude}`;
      details = { latitude: l.latitude, longitude: l.longitude };
      break;
    }
    default:
      kind = 'unsupported';
      details = compact({ keys: Object.keys(rawMsg).filter((k) => !commonMessageKeys.has(k)).slice(0, 20) });
  }

  return {
    type: 'message',
    providerMessageId: telegramMessageRef(msg.chat.id, msg.message_id),
    contact: contactFromChat(msg.chat, msg.from),
    kind,
    text,
    details: { ...details, ...commonDetails(msg) },
    sentAt: msg.date * 1000,
  };
}

/** Keys of Telegram's service messages (Bot API `Message`): chat events, not something a person wrote. */
const serviceMessageKeys = [
  'new_chat_members', 'left_chat_member', 'new_chat_title', 'new_chat_photo', 'delete_chat_photo', 'group_chat_created',
  'supergroup_chat_created', 'channel_chat_created', 'message_auto_delete_timer_changed', 'pinned_message',
  'users_shared', 'chat_shared', 'write_access_allowed', 'proximity_alert_triggered', 'boost_added', 'chat_background_set',
  'forum_topic_created', 'forum_topic_edited', 'forum_topic_closed', 'forum_topic_reopened', 'general_forum_topic_hidden',
  'general_forum_topic_unhidden', 'giveaway_created', 'giveaway_completed', 'video_chat_scheduled', 'video_chat_started',
  'video_chat_ended', 'video_chat_participants_invited',
] as const;

const commonMessageKeys = new Set([
  'message_id', 'message_thread_id', 'from', 'sender_chat', 'chat', 'date', 'edit_date', 'reply_to_message',
  'forward_origin', 'forward_from', 'forward_from_chat', 'forward_date', 'entities', 'caption', 'caption_entities',
  'is_topic_message', 'reply_markup', 'via_bot', 'author_signature', 'has_protected_content', 'media_group_id',
]);

function normalizeEdit(msg: TgMessage, raw: unknown, path: PathSegment[]): NormalizedEvent {
  const editDate = parseOrThrow(dateSchema, msg.edit_date, [...path, 'edit_date']);
  // A live location sends its moves as edits: keep where it is now.
  const rawLocation = (raw as Record<string, unknown>).location;
  const location = rawLocation === undefined ? undefined : parseOrThrow(locationSchema, rawLocation, [...path, 'location']);
  return {
    type: 'message',
    providerMessageId: `edit:${telegramMessageRef(msg.chat.id, msg.message_id)}:${editDate}`,
    contact: contactFromChat(msg.chat, msg.from),
    kind: 'edit',
    text: msg.text ?? msg.caption ?? (location ? `${location.latitude},${location.longitude}` : null),
    details: {
      editedMessageId: telegramMessageRef(msg.chat.id, msg.message_id),
      editDate,
      ...(location ? { latitude: location.latitude, longitude: location.longitude } : {}),
      ...commonDetails(msg),
    },
    sentAt: editDate * 1000,
  };
}

function normalizeCallback(cb: z.infer<typeof callbackSchema>, opts: NormalizeOptions): NormalizedEvent {
  const msg = cb.message;
  // Callbacks carry no date of their own; the bot message's date is a last resort (0 if inaccessible).
  const sentAt = opts.receivedAt ?? (msg?.date ? msg.date * 1000 : 0);
  return {
    type: 'message',
    providerMessageId: `cbq:${cb.id}`,
    // Replies go to the chat the button was in; an inline-mode callback has only `from`.
    contact: msg !== undefined ? contactFromChat(msg.chat, cb.from) : contactFromUser(cb.from),
    kind: 'callback',
    text: cb.data ?? null,
    details: compact({
      callbackQueryId: cb.id,
      data: cb.data,
      gameShortName: cb.game_short_name,
      messageId: msg === undefined ? undefined : telegramMessageRef(msg.chat.id, msg.message_id),
      inlineMessageId: cb.inline_message_id,
      chatInstance: cb.chat_instance,
      from: msg !== undefined && msg.chat.type !== 'private' ? senderOf(cb.from) : undefined,
    }),
    sentAt,
  };
}

function commonDetails(msg: TgMessage): Record<string, unknown> {
  const reply = msg.reply_to_message;
  return compact({
    chatType: msg.chat.type,
    threadId: msg.message_thread_id,
    replyToMessageId: reply === undefined ? undefined : telegramMessageRef(reply.chat?.id ?? msg.chat.id, reply.message_id),
    forwarded: msg.forward_origin !== undefined || msg.forward_date !== undefined ? true : undefined,
    // In groups the contact is the chat; keep who wrote.
    from: msg.chat.type !== 'private' && msg.from !== undefined ? senderOf(msg.from) : undefined,
  });
}

function senderOf(u: TgUser): Record<string, unknown> {
  return compact({ id: u.id, name: joinName(u.first_name, u.last_name), username: u.username });
}

/** The contact is the chat replies go to; phone is never known from a Telegram chat. */
function contactFromChat(chat: TgChat, from: TgUser | undefined): NormalizedContact {
  const isPrivate = chat.type === 'private';
  const name = isPrivate
    ? (joinName(chat.first_name, chat.last_name) ?? joinName(from?.first_name, from?.last_name))
    : (nonEmpty(chat.title) ?? joinName(chat.first_name, chat.last_name));
  return {
    providerContactId: String(chat.id),
    name,
    username: nonEmpty(chat.username) ?? (isPrivate ? nonEmpty(from?.username) : undefined),
  };
}

function contactFromUser(u: TgUser): NormalizedContact {
  return { providerContactId: String(u.id), name: joinName(u.first_name, u.last_name), username: nonEmpty(u.username) };
}
