import type { ApiDeps } from './deps.ts';
import type { ApiRequest, ApiResponse } from './http.ts';

/** A route action gets the path parameters in the order the pattern names them. */
export type Action = (deps: ApiDeps, request: ApiRequest, ...parameters: string[]) => Promise<ApiResponse>;

/** What matching needs of a route; the route table (route-table.ts) adds what the documents need. */
export interface RouteEntry {
  method: string;
  /** Segments; `{name}` matches any one non-empty segment. */
  path: string;
  action: Action;
}

export type Match<R extends RouteEntry> =
  | { kind: 'found'; route: R; parameters: string[] }
  | { kind: 'no-route' }
  | { kind: 'wrong-method'; allow: string[] };

/**
 * REST APIs deliver the path percent-encoded, the local server delivers it decoded; host ids contain neither
 * "%" nor "/", so decoding each segment once serves both, and a segment that is not a valid escape stays as
 * it is (the id check then names it).
 */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function segmentsOf(path: string): string[] | undefined {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (!trimmed.startsWith('/')) return undefined;
  return trimmed === '/' ? [] : trimmed.slice(1).split('/').map(decodeSegment);
}

function parametersOf(pattern: string, segments: readonly string[]): string[] | undefined {
  const parts = pattern === '/' ? [] : pattern.slice(1).split('/');
  if (parts.length !== segments.length) return undefined;
  const parameters: string[] = [];
  for (const [index, part] of parts.entries()) {
    const segment = segments[index] as string;
    if (part.startsWith('{')) {
      if (segment === '') return undefined;
      parameters.push(segment);
    } else if (part !== segment) return undefined;
  }
  return parameters;
}

/** The first path that matches decides; its routes (in table order) are the methods `Allow` lists. */
export function matchRoute<R extends RouteEntry>(
  routes: readonly R[],
  method: string,
  path: string,
): Match<R> {
  const segments = segmentsOf(path);
  if (!segments) return { kind: 'no-route' };
  for (const candidate of routes) {
    const parameters = parametersOf(candidate.path, segments);
    if (!parameters) continue;
    const atPath = routes.filter((route) => route.path === candidate.path);
    const route = atPath.find((entry) => entry.method === method.toUpperCase());
    if (!route) return { kind: 'wrong-method', allow: [...new Set(atPath.map((entry) => entry.method))] };
    return { kind: 'found', route, parameters };
  }
  return { kind: 'no-route' };
}
