import type { DocumentKind, DocumentStore } from '../groups/ports.ts';
import { retryOnConflict } from '../retry.ts';
import type { Projection, Stored } from './runner.ts';

export interface DocumentProjectionOptions<S, B> {
  documents: DocumentStore;
  kind: DocumentKind;
  id: string;
  now: () => Date;
  /** The stream version a state reflects (the decider's versionOf). */
  versionOf: (state: S) => number;
  /** undefined: the stream says the document should not exist (e.g. a deleted group). */
  toBody: (state: S) => B | undefined;
  fromBody: (body: B) => S;
}

/**
 * A stream's projection kept as a versioned document. The document's own version guards the write; when the
 * guard fails, somebody else projected meanwhile: the write goes ahead only if what they stored is older than
 * what we hold, so racing writers converge on the newest and none overwrites a newer with an older. A state
 * whose body is undefined (a deleted group) deletes the document.
 */
export function documentProjection<S, B>(options: DocumentProjectionOptions<S, B>): Projection<S> {
  const { documents, kind, id } = options;
  const load = async (): Promise<Stored<S> | undefined> => {
    const document = await documents.get<B>(kind, id);
    return document ? { state: options.fromBody(document.body), revision: document.version } : undefined;
  };
  return {
    load,
    save: (state, stored) =>
      retryOnConflict(async (tryNumber) => {
        const current = tryNumber === 1 ? stored : await load();
        if (tryNumber > 1 && current && options.versionOf(current.state) >= options.versionOf(state)) return;
        const body = options.toBody(state);
        if (body === undefined) {
          if (current) await documents.delete(kind, id, current.revision);
          return;
        }
        await documents.put(kind, id, body, current?.revision ?? 0, options.now());
      }),
  };
}
