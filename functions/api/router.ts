import type { ApiDeps } from './deps.ts';
import type { ApiRequest, ApiResponse } from './http.ts';

/** A route action gets the path parameters in the order the pattern names them. */
export type Action = (deps: ApiDeps, request: ApiRequest, ...parameters: string[]) => Promise<ApiResponse>;

export interface Route {
  /** Segments; `{name}` matches any one non-empty segment. */
  pattern: string;
  methods: Readonly<Record<string, Action>>;
}

export type Match =
  | { kind: 'found'; action: Action; parameters: string[] }
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

export function matchRoute(routes: readonly Route[], method: string, path: string): Match {
  const segments = segmentsOf(path);
  if (!segments) return { kind: 'no-route' };
  for (const route of routes) {
    const pattern = route.pattern === '/' ? [] : route.pattern.slice(1).split('/');
    if (pattern.length !== segments.length) continue;
    const parameters: string[] = [];
    const matches = pattern.every((part, index) => {
      const segment = segments[index] as string;
      if (part.startsWith('{')) {
        parameters.push(segment);
        return segment !== '';
      }
      return part === segment;
    });
    if (!matches) continue;
    const action = route.methods[method.toUpperCase()];
    if (!action) return { kind: 'wrong-method', allow: Object.keys(route.methods) };
    return { kind: 'found', action, parameters };
  }
  return { kind: 'no-route' };
}
