import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear in a log object. Secrets never reach a log line;
 * message text is personal data and is redacted too.
 */
export const redactPaths = [
  'authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  '*.*.accessToken',
  'appSecret',
  '*.appSecret',
  '*.*.appSecret',
  'verifyToken',
  '*.verifyToken',
  '*.*.verifyToken',
  'botToken',
  '*.botToken',
  '*.*.botToken',
  'secretToken',
  '*.secretToken',
  '*.*.secretToken',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'hmacKey',
  '*.hmacKey',
  '*.*.hmacKey',
  'secret',
  '*.secret',
  '*.*.secret',
  'adminToken',
  '*.adminToken',
  'text',
  '*.text',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { service: 'switchboard' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination as pino.DestinationStream | undefined,
  );
}
