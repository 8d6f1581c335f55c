import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import type { ProviderName } from '../providers/types.js';
import { createChannelSchema, mergeSettings, validateSettings, type ChannelSettings, type SettingsRefs } from './settings.js';

const refs: SettingsRefs = {
  chatbotExists: (id) => id === 'cb_1',
  agentExists: (id) => id === 'ag_1' || id === 'ag_2',
  completionCodeExists: (id) => id === 'cc_1',
  channelProvider: (id) => ({ ch_tg: 'telegram', ch_api: 'api', ch_waha: 'whatsapp' })[id] as ProviderName ?? null,
};

const base = {
  name: 'Support WABA',
  conversationType: 'chat',
  chatbotId: null,
  messenger: { provider: 'whatsapp_business', phoneNumberId: '106540352242922', accessToken: 'tok', appSecret: 'sec', verifyToken: 'vt' },
  writeFirst: { enabled: true, channelId: null },
  handling: { utilization: 50, autoAssignLimit: 2, autoAnswer: false, notificationTimeoutSec: 30, completionCodeIds: ['cc_1'], completionCodeTimeoutSec: 60 },
  agentIds: ['ag_1'],
};

function withPatch(patch: Record<string, unknown>): unknown {
  return mergeSettings(base as unknown as ChannelSettings, patch);
}

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err.errors[0]?.field;
    throw err;
  }
  return undefined;
}

describe('validateSettings', () => {
  it('accepts the documented example', () => {
    const s = validateSettings(base, refs, 'ch_self');
    expect(s.handling.utilization).toBe(50);
    expect(s.writeFirst).toEqual({ enabled: true, channelId: null });
  });

  it.each([
    ['utilization below 0', { handling: { utilization: -1 } }, 'handling.utilization'],
    ['utilization above 100', { handling: { utilization: 101 } }, 'handling.utilization'],
    ['utilization not an integer', { handling: { utilization: 50.5 } }, 'handling.utilization'],
    ['utilization a string', { handling: { utilization: '50' } }, 'handling.utilization'],
    ['autoAssignLimit 0', { handling: { autoAssignLimit: 0 } }, 'handling.autoAssignLimit'],
    ['autoAssignLimit fractional', { handling: { autoAssignLimit: 1.5 } }, 'handling.autoAssignLimit'],
    ['notification timeout missing with autoAnswer off', { handling: { notificationTimeoutSec: null } }, 'handling.notificationTimeoutSec'],
    ['notification timeout set with autoAnswer on', { handling: { autoAnswer: true } }, 'handling.notificationTimeoutSec'],
    ['notification timeout 0', { handling: { notificationTimeoutSec: 0 } }, 'handling.notificationTimeoutSec'],
    ['notification timeout past a day (an offer that would never time out)', { handling: { notificationTimeoutSec: 9007199254740991 } }, 'handling.notificationTimeoutSec'],
    ['completion-code timeout past a week', { handling: { completionCodeTimeoutSec: 604_801 } }, 'handling.completionCodeTimeoutSec'],
    ['codes without their timeout', { handling: { completionCodeTimeoutSec: null } }, 'handling.completionCodeTimeoutSec'],
    ['unknown completion code', { handling: { completionCodeIds: ['cc_1', 'cc_nope'] } }, 'handling.completionCodeIds.1'],
    ['conversation type unknown', { conversationType: 'sms' }, 'conversationType'],
    ['empty name', { name: '' }, 'name'],
    ['name too long', { name: 'x'.repeat(121) }, 'name'],
    ['unknown provider', { messenger: { provider: 'viber' } }, 'messenger.provider'],
    ['WABA with an empty app secret', { messenger: { appSecret: '' } }, 'messenger.appSecret'],
    ['WABA phone number id not numeric', { messenger: { phoneNumberId: '+1 555' } }, 'messenger.phoneNumberId'],
    ['telegram bad bot token', { messenger: { provider: 'telegram', botToken: 'nope', secretToken: 'abc' } }, 'messenger.botToken'],
    ['telegram bad secret token', { messenger: { provider: 'telegram', botToken: '123456:AAAAAAAAAAAAAAAAAAAAAAAAAAA', secretToken: 'has space' } }, 'messenger.secretToken'],
    ['waha bad base url', { messenger: { provider: 'whatsapp', baseUrl: 'not a url', session: 'default', apiKey: 'k', hmacKey: 'h' } }, 'messenger.baseUrl'],
    ['api without callback', { messenger: { provider: 'api', secret: 'whsec_x' } }, 'messenger.callbackUrl'],
    ['unknown agent', { agentIds: ['ag_1', 'ag_ghost'] }, 'agentIds.1'],
    ['unknown chatbot', { chatbotId: 'cb_ghost' }, 'chatbotId'],
    ['write first through unknown channel', { writeFirst: { channelId: 'ch_ghost' } }, 'writeFirst.channelId'],
    ['write first through an api channel', { writeFirst: { channelId: 'ch_api' } }, 'writeFirst.channelId'],
    ['api channel writing first itself', { messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook', secret: 'whsec_x' } }, 'writeFirst.channelId'],
    ['unknown top-level field', { colour: 'red' }, 'colour'],
  ])('refuses %s', (_name, patch, field) => {
    expect(fieldOf(() => validateSettings(withPatch(patch), refs, 'ch_self'))).toBe(field);
  });

  it.each([
    ['autoAnswer on with timeout cleared', { handling: { autoAnswer: true, notificationTimeoutSec: null } }],
    ['api channel writing first through telegram', { messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook', secret: 'whsec_x' }, writeFirst: { enabled: true, channelId: 'ch_tg' } }],
    ['write first off on an api channel', { messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook', secret: 'whsec_x' }, writeFirst: { enabled: false, channelId: null } }],
    ['utilization 0', { handling: { utilization: 0 } }],
    ['utilization 100', { handling: { utilization: 100 } }],
    ['no codes and no code timeout', { handling: { completionCodeIds: [], completionCodeTimeoutSec: null } }],
    ['each conversation type', { conversationType: 'email' }],
    ['a chatbot', { chatbotId: 'cb_1' }],
    ['write first naming itself', { writeFirst: { enabled: true, channelId: 'ch_self' } }],
  ])('accepts %s', (_name, patch) => {
    expect(() => validateSettings(withPatch(patch), refs, 'ch_self')).not.toThrow();
  });

  it('names every field at fault, not only the first', () => {
    try {
      validateSettings(withPatch({ handling: { autoAssignLimit: 0, utilization: 200 } }), refs, null);
      expect.unreachable();
    } catch (err) {
      expect((err as AppError).errors.map((e) => e.field).sort()).toEqual(['handling.autoAssignLimit', 'handling.utilization']);
    }
  });

  it('dedupes agent and code lists', () => {
    const s = validateSettings(withPatch({ agentIds: ['ag_1', 'ag_1', 'ag_2'] }), refs, null);
    expect(s.agentIds).toEqual(['ag_1', 'ag_2']);
  });
});

describe('mergeSettings', () => {
  it('merges handling key by key and keeps stored secrets when the provider stays', () => {
    const merged = withPatch({ handling: { utilization: 70 }, messenger: { accessToken: 'new' } }) as ChannelSettings;
    expect(merged.handling.autoAssignLimit).toBe(2);
    expect(merged.handling.utilization).toBe(70);
    expect(merged.messenger).toMatchObject({ accessToken: 'new', appSecret: 'sec' });
  });

  it('starts the messenger afresh when the provider changes', () => {
    const merged = withPatch({ messenger: { provider: 'telegram', botToken: '1:x' } }) as ChannelSettings;
    expect(merged.messenger).toEqual({ provider: 'telegram', botToken: '1:x' });
  });
});

describe('createChannelSchema defaults', () => {
  it('fills optional parts', () => {
    const v = createChannelSchema.parse({ name: 'x', handling: { utilization: 1 } });
    expect(v).toMatchObject({ chatbotId: null, writeFirst: { enabled: false, channelId: null }, agentIds: [] });
    expect(v.handling).toMatchObject({ utilization: 1, notificationTimeoutSec: null, completionCodeIds: [] });
  });
});
