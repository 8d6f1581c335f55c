import { z } from 'zod';
import { AGENT_TOKEN_PREFIX } from './lib/tokens.js';

/**
 * The gateway's configuration, read from the environment only (here and nowhere else).
 * These variable names are a contract: other tools start the gateway with them.
 */

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `5s`, `2m`, `1h`, `250ms`, `1d` into milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * durationUnits[m[2]!]!;
}

const retryScheduleSchema = z.string().transform((text, ctx) => {
  const parts = text.split(',').map((p) => p.trim()).filter(Boolean);
  const out: number[] = [];
  for (const p of parts) {
    const ms = parseDuration(p);
    if (ms === null || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: `"${p}" is not a duration like 5s, 2m, 1h` });
      return z.NEVER;
    }
    out.push(ms);
  }
  if (out.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'needs at least one delay' });
    return z.NEVER;
  }
  return out;
});

const urlSchema = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATA_DIR: z.string().min(1).default('./data'),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  // Sent as `Authorization: Bearer <token>`: one run of non-space characters, and not in the form
  // of an agent's token (AGENT_TOKEN_PREFIX), which is only ever checked as one. Either would start a gateway
  // whose admin API answers 401 to every call.
  ADMIN_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .regex(/^\S+$/, 'must not contain spaces')
    .refine((t) => !t.startsWith(AGENT_TOKEN_PREFIX), `must not start with ${AGENT_TOKEN_PREFIX} (the prefix of agent tokens)`)
    .optional(),
  PUBLIC_BASE_URL: urlSchema.optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRAPH_API_BASE_URL: urlSchema.default('https://graph.facebook.com/v21.0'),
  TELEGRAM_API_BASE_URL: urlSchema.default('https://api.telegram.org'),
  DELIVERY_RETRY_SCHEDULE: z.string().default('5s,30s,2m,10m,30m,1h,3h,6h').pipe(retryScheduleSchema),
  /** How long Telegram update ids (dedupe) and records of ignored events are kept; at least a day. */
  INBOUND_EVENTS_RETENTION: z
    .string()
    .default('7d')
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === null || ms < 86_400_000) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration of at least a day, like 7d or 36h (Telegram retries for 24 hours)` });
        return z.NEVER;
      }
      return ms;
    }),
  /** Queue key prefix in Redis; tests give each run its own. */
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('switchboard'),
  /** Run the BullMQ workers in this process (set false for an API-only process). */
  WORKERS: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
});

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly redisUrl: string;
  /** Undefined until resolved at start (generated and stored in the data dir when unset). */
  readonly adminToken: string | undefined;
  readonly publicBaseUrl: string;
  readonly logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  readonly graphApiBaseUrl: string;
  readonly telegramApiBaseUrl: string;
  /** Delays in ms after the first try; its length + 1 is the number of attempts. */
  readonly deliveryRetrySchedule: readonly number[];
  readonly queuePrefix: string;
  readonly runWorkers: boolean;
  /** Milliseconds inbound_events rows are kept (src/ingest/retention.ts). */
  readonly inboundEventsRetentionMs: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses the environment; throws ConfigError naming every bad key. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings count as unset, as shells and compose files often pass them.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const e = parsed.data;
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    redisUrl: e.REDIS_URL,
    adminToken: e.ADMIN_TOKEN,
    publicBaseUrl: e.PUBLIC_BASE_URL ?? `http://localhost:${e.PORT}`,
    logLevel: e.LOG_LEVEL,
    graphApiBaseUrl: e.GRAPH_API_BASE_URL,
    telegramApiBaseUrl: e.TELEGRAM_API_BASE_URL,
    deliveryRetrySchedule: Object.freeze([...e.DELIVERY_RETRY_SCHEDULE]),
    queuePrefix: e.QUEUE_PREFIX,
    runWorkers: e.WORKERS,
    inboundEventsRetentionMs: e.INBOUND_EVENTS_RETENTION,
  });
}
