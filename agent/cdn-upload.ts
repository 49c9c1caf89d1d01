import { readFile } from 'node:fs/promises';
import { type SignedPolicy, signedObjectUrl } from '../shared/cdn-policy.ts';

/*
 * The CDN upload path: a plain HTTPS PUT of the snapshot to `<url>/snapshots/<hostId>/<seq>.json` with the
 * host's CloudFront signed policy in the query string. No AWS credentials are involved: CloudFront checks the
 * policy (it covers this host's prefix only) and writes into the bucket through Origin Access Control.
 */

export interface CdnUpload {
  /** `https://<distribution domain>` (FLEETFOLD_UPLOAD_URL). */
  url: string;
  /** The grant in force; read before every PUT, so a grant replaced on disk is used from the next upload on. */
  grant(): Promise<SignedPolicy & { expiresAt?: string }>;
}

export class CdnUploadError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'CdnUploadError';
  }
}

/**
 * The grant as the control plane handed it out (the `upload` member of `POST /hosts`' answer, or the file the
 * local fleet writes), re-read on each call: rotating the grant is replacing the file.
 */
export function grantFromFile(path: string): CdnUpload['grant'] {
  return async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'));
    } catch (error) {
      throw new CdnUploadError(`upload grant ${path} cannot be read: ${(error as Error).message}`);
    }
    const { policy, signature, keyPairId, expiresAt } = (parsed ?? {}) as Record<string, unknown>;
    if (typeof policy !== 'string' || typeof signature !== 'string' || typeof keyPairId !== 'string') {
      throw new CdnUploadError(`upload grant ${path} lacks policy, signature or keyPairId`);
    }
    return { policy, signature, keyPairId, ...(typeof expiresAt === 'string' ? { expiresAt } : {}) };
  };
}

export async function putThroughCdn(
  upload: CdnUpload,
  key: string,
  body: string,
  signal: AbortSignal,
  now: Date,
): Promise<void> {
  const grant = await upload.grant();
  // Known to fail: say why, instead of a bare 403 from the edge.
  if (grant.expiresAt !== undefined && Date.parse(grant.expiresAt) <= now.getTime()) {
    throw new CdnUploadError(`the upload grant expired at ${grant.expiresAt}: the host needs a fresh one`);
  }
  const response = await fetch(signedObjectUrl(upload.url, key, grant), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body,
    signal,
  });
  // Drained either way, so the connection goes back to the pool.
  const text = await response.text();
  if (!response.ok) {
    throw new CdnUploadError(
      `PUT ${key} through ${upload.url} answered ${response.status}: ${text.slice(0, 200)}`,
      response.status,
    );
  }
}
