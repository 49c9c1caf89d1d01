/**
 * One error hierarchy for the whole domain. Only the edges (API handler, ingest) map these to
 * HTTP problems or quarantine reasons; anything else that escapes is a bug and becomes a 500.
 */
export type ErrorCode = 'validation' | 'not-found' | 'conflict' | 'auth' | 'too-large';

export class FleetfoldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra machine-readable members for the problem document (e.g. the offending field). */
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    status: number,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export class ValidationError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('validation', 400, message, details, options);
  }
}

export class NotFoundError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('not-found', 404, message, details);
  }
}

export class ConflictError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('conflict', 409, message, details, options);
  }
}

export class AuthError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('auth', 401, message, details);
  }
}

export class TooLargeError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('too-large', 413, message, details);
  }
}

/**
 * A command made on a condition about a stream's version (e.g. "only if the definition is still at version 3")
 * that no longer holds: somebody changed it since the caller read it. A refusal, never retried; an HTTP edge
 * answers it as 412 Precondition Failed, anything else as the conflict it is.
 */
export class StaleVersionError extends ConflictError {}
