/**
 * One error class with a closed set of codes, and one translator to problem+json (RFC 9457).
 * A new code does not compile until `statusOf` maps it.
 */

export type ErrorCode =
  | 'validation_failed'
  | 'invalid_json'
  | 'unauthorized'
  | 'invalid_signature'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'offer_gone'
  | 'conversation_not_active'
  | 'write_first_disabled'
  | 'template_required'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'service_unavailable'
  | 'internal';

export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'validation_failed':
    case 'invalid_json':
      return 400;
    case 'unauthorized':
    case 'invalid_signature':
      return 401;
    case 'forbidden':
      return 403;
    case 'not_found':
      return 404;
    case 'conflict':
    case 'offer_gone':
    case 'conversation_not_active':
      return 409;
    case 'payload_too_large':
      return 413;
    case 'unsupported_media_type':
      return 415;
    case 'write_first_disabled':
    case 'template_required':
      return 422;
    case 'service_unavailable':
      return 503;
    case 'internal':
      return 500;
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

const titles: Record<ErrorCode, string> = {
  validation_failed: 'Validation failed',
  invalid_json: 'Malformed JSON',
  unauthorized: 'Unauthorized',
  invalid_signature: 'Invalid signature',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  conflict: 'Conflict',
  offer_gone: 'Offer no longer available',
  conversation_not_active: 'Conversation not active',
  write_first_disabled: 'Write-first is disabled',
  template_required: 'Template required',
  payload_too_large: 'Payload too large',
  unsupported_media_type: 'Unsupported media type',
  service_unavailable: 'Service unavailable',
  internal: 'Internal server error',
};

export interface FieldError {
  /** Dotted path of the field at fault, e.g. `handling.utilization`. */
  field: string;
  message: string;
}

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
    this.status = statusOf(code);
  }

  static validation(field: string, message: string): AppError {
    return new AppError('validation_failed', `${field}: ${message}`, [{ field, message }]);
  }

  static notFound(what: string): AppError {
    return new AppError('not_found', `${what} not found`);
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  requestId?: string | undefined;
  /** The first field at fault, for clients that show one message. */
  field?: string | undefined;
  errors?: FieldError[] | undefined;
}

export function toProblem(err: AppError, requestId?: string): Problem {
  return {
    type: `https://switchboard.dev/problems/${err.code.replaceAll('_', '-')}`,
    title: titles[err.code],
    status: err.status,
    detail: err.message,
    code: err.code,
    requestId,
    field: err.errors[0]?.field,
    errors: err.errors.length > 0 ? err.errors : undefined,
  };
}

/** Converts zod issues (v4 shape) into field errors with dotted paths. */
export function fieldErrorsFromIssues(issues: ReadonlyArray<ZodLikeIssue>, prefix = ''): FieldError[] {
  return issues.flatMap((i) => {
    const path = i.path.map(String).join('.');
    const at = (p: string) => [prefix, p].filter(Boolean).join('.') || '(body)';
    // Unknown keys are reported on the object; name each key as the field at fault.
    if (i.code === 'unrecognized_keys' && Array.isArray(i.keys)) {
      return i.keys.map((k) => ({ field: at([path, String(k)].filter(Boolean).join('.')), message: 'is not a known field' }));
    }
    return [{ field: at(path), message: i.message }];
  });
}

interface ZodLikeIssue {
  path: ReadonlyArray<PropertyKey>;
  message: string;
  code?: string;
  keys?: readonly unknown[];
}

export function validationFromIssues(
  issues: ReadonlyArray<ZodLikeIssue>,
  prefix = '',
): AppError {
  const errors = fieldErrorsFromIssues(issues, prefix);
  const first = errors[0]!;
  return new AppError('validation_failed', `${first.field}: ${first.message}`, errors);
}
