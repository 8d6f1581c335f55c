import { z } from 'zod';
import { conversationTypes, type ConversationType } from '../db/schema.js';
import { AppError, fieldErrorsFromIssues, type FieldError } from '../errors.js';
import { isRecord } from '../lib/is-record.js';
import { providerNames, type MessengerConfig, type ProviderName } from '../providers/types.js';

/**
 * A channel's settings exactly as DESIGN.md §1 describes them, and their validation. Pure: the
 * references (agents, codes, chatbots, other channels) are looked up through `SettingsRefs`.
 */

export interface ChannelSettings {
  name: string;
  conversationType: ConversationType;
  chatbotId: string | null;
  messenger: MessengerConfig;
  writeFirst: { enabled: boolean; channelId: string | null };
  handling: {
    utilization: number;
    autoAssignLimit: number;
    autoAnswer: boolean;
    notificationTimeoutSec: number | null;
    completionCodeIds: string[];
    completionCodeTimeoutSec: number | null;
  };
  agentIds: string[];
}

const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' });

const messengerSchemas = {
  whatsapp_business: z.strictObject({
    provider: z.literal('whatsapp_business'),
    phoneNumberId: z.string().regex(/^\d{1,32}$/, 'must be the numeric phone number id'),
    accessToken: z.string().min(1),
    appSecret: z.string().min(1),
    verifyToken: z.string().min(1),
  }),
  telegram: z.strictObject({
    provider: z.literal('telegram'),
    botToken: z.string().regex(/^\d+:[A-Za-z0-9_-]{20,}$/, 'must look like 123456789:AA…'),
    secretToken: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, 'must be 1–256 characters of A-Z a-z 0-9 _ -'),
  }),
  whatsapp: z.strictObject({
    provider: z.literal('whatsapp'),
    baseUrl: httpUrl,
    session: z.string().min(1),
    apiKey: z.string().min(1),
    hmacKey: z.string().min(1),
  }),
  api: z.strictObject({
    provider: z.literal('api'),
    callbackUrl: httpUrl,
    secret: z.string().startsWith('whsec_'),
  }),
} satisfies Record<ProviderName, z.ZodType>;

const idList = z.array(z.string().min(1));

/** Shape of the full settings; cross-field rules and references are checked in validateSettings. */
const settingsShape = z.strictObject({
  name: z.string().trim().min(1, 'must not be empty').max(120, 'must be at most 120 characters'),
  conversationType: z.enum(conversationTypes, { message: `must be one of ${conversationTypes.join(', ')}` }),
  chatbotId: z.string().min(1).nullable(),
  messenger: z.looseObject({
    provider: z.enum(providerNames, { message: `must be one of ${providerNames.join(', ')}` }),
  }),
  writeFirst: z.strictObject({ enabled: z.boolean(), channelId: z.string().min(1).nullable() }),
  handling: z.strictObject({
    utilization: z.number().int('must be an integer').min(0, 'must be 0–100').max(100, 'must be 0–100'),
    autoAssignLimit: z.number().int('must be an integer').min(1, 'must be at least 1'),
    autoAnswer: z.boolean(),
    notificationTimeoutSec: z.number().int('must be an integer').min(1, 'must be at least 1').max(86_400, 'must be at most 86400 (a day)').nullable(),
    completionCodeIds: idList,
    completionCodeTimeoutSec: z.number().int('must be an integer').min(1, 'must be at least 1').max(604_800, 'must be at most 604800 (a week)').nullable(),
  }),
  agentIds: idList,
});

/** The create body: optional parts get their defaults before validation. */
export const createChannelSchema = z.looseObject({}).transform((raw) => ({
  ...raw,
  chatbotId: raw.chatbotId ?? null,
  writeFirst: withDefaults(raw.writeFirst, { enabled: false, channelId: null }),
  handling: withDefaults(raw.handling, { notificationTimeoutSec: null, completionCodeIds: [], completionCodeTimeoutSec: null }),
  agentIds: raw.agentIds ?? [],
}));

function withDefaults(value: unknown, defaults: Record<string, unknown>): unknown {
  if (value === undefined) return defaults;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v;
  return out;
}

/** A PATCH body: any subset; objects are merged into the stored settings, arrays replace. */
export const patchChannelSchema = z.looseObject({});

export interface SettingsRefs {
  chatbotExists(id: string): boolean;
  agentExists(id: string): boolean;
  completionCodeExists(id: string): boolean;
  /** Provider of a live channel, or null when there is none with that id. */
  channelProvider(id: string): ProviderName | null;
}

export const writeFirstProviders: readonly ProviderName[] = ['whatsapp', 'whatsapp_business', 'telegram'];

/**
 * Validates complete settings (after defaults or a merge). `selfId` is the channel's own id
 * when it exists already. Throws AppError('validation_failed') listing every field at fault.
 */
export function validateSettings(raw: unknown, refs: SettingsRefs, selfId: string | null): ChannelSettings {
  const shape = settingsShape.safeParse(raw);
  if (!shape.success) throw toValidationError(fieldErrorsFromIssues(shape.error.issues));
  const s = shape.data;
  const errors: FieldError[] = [];

  const messengerSchema = messengerSchemas[s.messenger.provider] as z.ZodType<MessengerConfig>;
  const messenger = messengerSchema.safeParse(s.messenger);
  if (!messenger.success) errors.push(...fieldErrorsFromIssues(messenger.error.issues, 'messenger'));

  const h = s.handling;
  if (!h.autoAnswer && h.notificationTimeoutSec === null) {
    errors.push({ field: 'handling.notificationTimeoutSec', message: 'is required when autoAnswer is off' });
  }
  if (h.autoAnswer && h.notificationTimeoutSec !== null) {
    errors.push({ field: 'handling.notificationTimeoutSec', message: 'must not be set when autoAnswer is on (send null)' });
  }
  if (h.completionCodeIds.length > 0 && h.completionCodeTimeoutSec === null) {
    errors.push({ field: 'handling.completionCodeTimeoutSec', message: 'is required when completion codes are set' });
  }

  if (s.chatbotId !== null && !refs.chatbotExists(s.chatbotId)) {
    errors.push({ field: 'chatbotId', message: `chatbot ${s.chatbotId} does not exist` });
  }
  s.agentIds.forEach((id, i) => {
    if (!refs.agentExists(id)) errors.push({ field: `agentIds.${i}`, message: `agent ${id} does not exist` });
  });
  h.completionCodeIds.forEach((id, i) => {
    if (!refs.completionCodeExists(id)) {
      errors.push({ field: `handling.completionCodeIds.${i}`, message: `completion code ${id} does not exist` });
    }
  });

  const wf = s.writeFirst;
  if (wf.channelId !== null && wf.channelId !== selfId) {
    const provider = refs.channelProvider(wf.channelId);
    if (provider === null) {
      errors.push({ field: 'writeFirst.channelId', message: `channel ${wf.channelId} does not exist` });
    } else if (!writeFirstProviders.includes(provider)) {
      errors.push({
        field: 'writeFirst.channelId',
        message: `channel ${wf.channelId} is a ${provider} channel; write-first needs ${writeFirstProviders.join(', ')}`,
      });
    }
  } else if (wf.enabled && !writeFirstProviders.includes(s.messenger.provider)) {
    errors.push({
      field: 'writeFirst.channelId',
      message: `a ${s.messenger.provider} channel cannot write first itself; set writeFirst.channelId to a ${writeFirstProviders.join(', ')} channel`,
    });
  }

  if (errors.length > 0) throw toValidationError(errors);
  return {
    name: s.name,
    conversationType: s.conversationType,
    chatbotId: s.chatbotId,
    messenger: (messenger as { data: MessengerConfig }).data,
    writeFirst: { enabled: wf.enabled, channelId: wf.channelId === selfId ? null : wf.channelId },
    handling: {
      ...h,
      completionCodeIds: [...new Set(h.completionCodeIds)],
    },
    agentIds: [...new Set(s.agentIds)],
  };
}

function toValidationError(errors: FieldError[]): AppError {
  const first = errors[0]!;
  return new AppError('validation_failed', `${first.field}: ${first.message}`, errors);
}

/**
 * Merges a PATCH into stored settings: nested objects merge key by key (null clears a value),
 * arrays and scalars replace. A messenger patch merges into the stored credentials when the
 * provider stays the same (so one secret can be rotated alone); a new provider starts afresh.
 */
export function mergeSettings(stored: ChannelSettings, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...stored };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const current = (stored as unknown as Record<string, unknown>)[key];
    if (key === 'messenger' && isRecord(value)) {
      const sameProvider = value.provider === undefined || value.provider === stored.messenger.provider;
      out.messenger = sameProvider ? { ...stored.messenger, ...value } : value;
    } else if ((key === 'handling' || key === 'writeFirst') && isRecord(value) && isRecord(current)) {
      out[key] = { ...current, ...value };
    } else {
      out[key] = value;
    }
  }
  return out;
}
