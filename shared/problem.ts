import { $ZodError } from 'zod/v4/core';
import { FleetfoldError } from './errors.ts';
import { toPointer } from './json-pointer.ts';

/** An RFC 9457 problem document. Extension members (e.g. `parameter`, `errors`) sit beside the standard ones. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  [member: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
};

const STANDARD_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'instance']);

/** One zod issue, addressed by a JSON pointer into the checked value ("" is the value itself). */
export interface IssueSummary {
  path: string;
  code: string;
  message: string;
}

export function zodIssues(error: $ZodError): IssueSummary[] {
  return error.issues.map((issue) => ({
    path: toPointer(issue.path.map(String)),
    code: issue.code,
    message: issue.message,
  }));
}

/**
 * Builds a problem document. `kind` names the problem type (a URN, since there is no page to dereference);
 * extension members never overwrite the standard ones.
 */
export function problem(
  status: number,
  kind: string,
  detail: string,
  members: Record<string, unknown> = {},
): ProblemDocument {
  const extensions = Object.fromEntries(
    Object.entries(members).filter(([key]) => !STANDARD_MEMBERS.has(key)),
  );
  return {
    type: `urn:fleetfold:problem:${kind}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    ...extensions,
  };
}

/**
 * Maps anything thrown to a problem. Domain errors and schema failures are the client's to fix and say why;
 * everything else is a bug whose message may hold internals, so it gets a generic detail (log it yourself).
 */
export function problemOf(error: unknown): ProblemDocument {
  if (error instanceof FleetfoldError) return problem(error.status, error.code, error.message, error.details);
  if (error instanceof $ZodError) {
    const errors = zodIssues(error);
    const listed = errors.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ');
    return problem(400, 'validation', `the request is invalid: ${listed}`, { errors });
  }
  return problem(500, 'internal', 'an unexpected error occurred; it has been logged');
}

/** True when `problemOf(error)` hides the error behind a generic 500, i.e. it must be logged. */
export function isUnexpected(error: unknown): boolean {
  return !(error instanceof FleetfoldError) && !(error instanceof $ZodError);
}
