/** Fake provider servers for tests and benchmarks; see fake-server.ts for the shared API. */
export {
  startFakeServer,
  unusedUrl,
  type FakeServer,
  type FakeServerOptions,
  type RecordedRequest,
  type ReplyFn,
  type ScriptedReply,
} from './fake-server.js';
export { createFakeWaba, metaError, wamid, type FakeWabaOptions } from './waba.js';
export { createFakeTelegram, telegramError, type FakeTelegramOptions } from './telegram.js';
export { createFakeWaha, type FakeWahaOptions } from './waha.js';
export {
  createFakeCallbackReceiver,
  verifyStandardWebhook,
  type FakeCallbackOptions,
  type SignatureVerdict,
} from './callback.js';
