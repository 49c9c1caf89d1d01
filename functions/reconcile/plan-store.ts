import { NotFoundError } from '../../shared/errors.ts';
import type { Plan } from '../../shared/groups/model.ts';
import type { BlobStore, DocumentStore, PlanStore } from '../../shared/groups/ports.ts';
import { retryOnConflict } from '../../shared/retry.ts';

export type { BlobStore, PlanStore };

/** A plan document holds the plan itself, or where it went when it was too large for an item. */
type PlanDocument = ({ plan: Plan } | { ref: { bucket: string; key: string } }) & { converged?: number[] };

/** Below DynamoDB's 400 KB item limit with room for the attribute names and the other members. */
export const INLINE_PLAN_LIMIT_BYTES = 300 * 1024;

export const PLAN_PREFIX = 'plans/';

/** Plans as 'plan' documents; large ones in S3 under plans/, the document pointing there. */
export class DocumentPlanStore implements PlanStore {
  readonly #documents: DocumentStore;
  readonly #blobs: BlobStore | undefined;

  constructor(options: { documents: DocumentStore; blobs?: BlobStore }) {
    this.#documents = options.documents;
    this.#blobs = options.blobs;
  }

  async save(planId: string, plan: Plan, at: Date): Promise<void> {
    // A retried Plan step computes the same id: the first stored plan stays the one the run follows.
    if (await this.#documents.get<PlanDocument>('plan', planId)) return;
    const json = JSON.stringify(plan);
    let body: PlanDocument = { plan };
    if (Buffer.byteLength(json, 'utf8') > INLINE_PLAN_LIMIT_BYTES) {
      if (!this.#blobs)
        throw new Error(`plan ${planId} is too large for a document and no bucket is configured`);
      body = { ref: await this.#blobs.put(`${PLAN_PREFIX}${planId}.json`, json) };
    }
    await this.#documents.put('plan', planId, body, 0, at);
  }

  async markConverged(planId: string, wave: number, at: Date): Promise<void> {
    await retryOnConflict(async () => {
      const document = await this.#document(planId);
      const converged = document.body.converged ?? [];
      if (converged.includes(wave)) return;
      await this.#documents.put(
        'plan',
        planId,
        { ...document.body, converged: [...converged, wave] },
        document.version,
        at,
      );
    });
  }

  async converged(planId: string): Promise<ReadonlySet<number>> {
    return new Set((await this.#document(planId)).body.converged ?? []);
  }

  async #document(planId: string) {
    const document = await this.#documents.get<PlanDocument>('plan', planId);
    if (!document) throw new NotFoundError(`plan ${planId} does not exist`, { planId });
    return document;
  }

  async load(planId: string): Promise<Plan> {
    const body = (await this.#document(planId)).body;
    if ('plan' in body) return body.plan;
    if (!this.#blobs) throw new Error(`plan ${planId} is in S3 but no bucket is configured`);
    return JSON.parse(await this.#blobs.get(body.ref)) as Plan;
  }
}
