/**
 * HTTP conditional requests on groups: the ETag names the definition version, If-Match / If-None-Match
 * become DefinitionPreconditions for the domain, and the domain's StaleVersionError becomes a 412 that
 * names the header as the client sent it.
 */
import { FleetfoldError, type StaleVersionError } from '../../shared/errors.ts';
import type { DefinitionPreconditions } from '../../shared/groups/group-decider.ts';
import type { ApiRequest } from './http.ts';

/** HTTP 412: a conditional request whose condition does not hold. */
export class PreconditionFailedError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('conflict', 412, message, details, options);
  }
}

/**
 * The ETag names the definition version: it moves when an operator defines the group and when a succeeded
 * rollout becomes its definition, so a read-modify-write from before a rollout cannot undo it unnoticed.
 */
export function etagOf(definitionVersion: number): string {
  return `"${definitionVersion}"`;
}

/** Entity tags of an If-Match / If-None-Match header; weak tags compare by their value. */
function entityTags(header: string): string[] {
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .filter((tag) => tag.length > 0);
}

/** `*` matches any version (undefined); a tag that names no version of ours matches none. */
function versionsOf(header: string): { versions?: number[] } {
  const tags = entityTags(header);
  if (tags.includes('*')) return {};
  return { versions: tags.flatMap((tag) => (/^"[0-9]{1,15}"$/.test(tag) ? [Number(tag.slice(1, -1))] : [])) };
}

export function definitionPreconditions(request: ApiRequest): DefinitionPreconditions {
  const ifMatch = request.headers['if-match'];
  const ifNoneMatch = request.headers['if-none-match'];
  return {
    ...(ifMatch !== undefined ? { matching: versionsOf(ifMatch) } : {}),
    ...(ifNoneMatch !== undefined ? { notMatching: versionsOf(ifNoneMatch) } : {}),
  };
}

/** The domain's refusal in the terms of the header the client sent. */
export function preconditionFailed(request: ApiRequest, error: StaleVersionError): PreconditionFailedError {
  const group = String(error.details.group ?? '');
  const current = typeof error.details.current === 'number' ? etagOf(error.details.current) : undefined;
  if (error.details.precondition === 'matching') {
    const expected = request.headers['if-match'] ?? '';
    return new PreconditionFailedError(
      current === undefined
        ? `If-Match ${expected} cannot hold: group "${group}" does not exist`
        : `If-Match ${expected} does not match the current definition version ${current} of group "${group}"`,
      { group, precondition: 'If-Match', expected, current: current ?? null },
      { cause: error },
    );
  }
  const expected = request.headers['if-none-match'] ?? '';
  return new PreconditionFailedError(
    `group "${group}" exists at definition version ${current}; If-None-Match ${expected} only lets a request through when it does not`,
    { group, precondition: 'If-None-Match', expected, current: current ?? null },
    { cause: error },
  );
}
