/**
 * Every problem type the API (and the local server in front of it) can answer, with the statuses it comes with.
 * The OpenAPI document lists them all; test/openapi.test.ts scans the sources for `problem(…)` and error
 * classes, so a new kind that is not listed here fails the build.
 */
import { problem } from '../../shared/problem.ts';

export interface ProblemType {
  kind: string;
  statuses: readonly number[];
  /** One line, for the responses of each operation. */
  summary: string;
  description: string;
}

export const PROBLEM_TYPES = [
  {
    kind: 'validation',
    summary: 'the request is invalid, or its body is in a media type the resource does not take',
    statuses: [400, 415],
    description:
      'The request is invalid (400): a body, query or path parameter that fails its schema, an unknown query parameter, a `format` other than json or xml; or a body in a media type the resource does not take (415). `errors` lists each failing field by JSON pointer; `parameter` names a query or path parameter.',
  },
  {
    kind: 'not-found',
    summary: 'what the request names does not exist',
    statuses: [404],
    description: 'The host, group, rollout, version or assignment named does not exist.',
  },
  {
    kind: 'conflict',
    summary: 'the request contradicts the current state, or a precondition does not hold',
    statuses: [409, 412],
    description:
      'The request contradicts the current state (409: e.g. a rollout already running, a running group to delete, a duplicate host); or an `If-Match` / `If-None-Match` precondition does not hold (412). Links in the problem name the way out.',
  },
  {
    kind: 'auth',
    summary: 'a stored secret could not be used',
    statuses: [401],
    description:
      'A stored secret could not be used (it does not decrypt under the key the control plane holds).',
  },
  {
    kind: 'too-large',
    summary: 'the body is over the limit',
    statuses: [413],
    description: 'The body is over the limit (64 KiB); `limit` says how many bytes are accepted.',
  },
  {
    kind: 'no-route',
    summary: 'no resource at this path',
    statuses: [404],
    description: 'No resource at this path.',
  },
  {
    kind: 'method-not-allowed',
    summary: 'the resource does not have this method',
    statuses: [405],
    description: 'The resource exists but not with this method; the `Allow` header lists the methods it has.',
  },
  {
    kind: 'unauthorized',
    summary: 'local mode: the bearer token is missing or wrong',
    statuses: [401],
    description:
      'Local mode only: the `Authorization: Bearer <token>` header is missing or not the token in `.fleetfold/token`.',
  },
  {
    kind: 'internal',
    summary: 'an unexpected failure (logged)',
    statuses: [500],
    description: 'An unexpected failure; the detail is generic and the error is logged.',
  },
] as const satisfies readonly ProblemType[];

export type ProblemKind = (typeof PROBLEM_TYPES)[number]['kind'];

/** The problem document's `type` for a kind, as `shared/problem.ts` spells it. */
export function problemTypeUri(kind: string): string {
  return problem(500, kind, '').type;
}

/** A problem a route may answer: its kind and the status it comes with there. */
export interface RouteProblem {
  status: number;
  kind: ProblemKind;
}
