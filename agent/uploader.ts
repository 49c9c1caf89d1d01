import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { snapshotKey } from '../shared/keys.ts';
import type { MachineState, Snapshot } from '../shared/schemas.ts';
import { signSnapshot } from '../shared/signing.ts';
import { type CdnUpload, putThroughCdn } from './cdn-upload.ts';
import type { PostReason } from './change-detector.ts';

export interface UploadRequest {
  state: MachineState;
  reason: PostReason;
  /** Number of tracked paths that changed (for reason 'changed'). */
  changes?: number;
}

export interface PostedSnapshot {
  hostId: string;
  seq: number;
  key: string;
  signedAt: string;
  reason: PostReason;
  changes?: number;
  /** Attempts it took, this one included. */
  attempts: number;
  state: MachineState;
}

export interface SequenceSource {
  next(): Promise<number>;
}

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export interface SnapshotUploaderOptions {
  s3: S3Client;
  bucket: string;
  hostId: string;
  secret: string;
  sequence: SequenceSource;
  /** PUT through the CloudFront distribution with a signed policy instead of to S3 with the instance role. */
  cdn?: CdnUpload;
  clock?: () => Date;
  /** Uniform in [0, 1): the jitter. */
  random?: () => number;
  /** First retry delay; default 200 ms. */
  baseDelayMs?: number;
  /** Retry delays never exceed this; default 30 s. */
  maxDelayMs?: number;
  /**
   * A signature older than this is not retried as is; default 60 s. The ingest refuses snapshots signed more
   * than 300 s from S3's receipt time, and this leaves room for the host's own clock error.
   */
  resignAfterMs?: number;
  /** One PUT may take this long before it counts as failed; default 10 s. */
  attemptTimeoutMs?: number;
  onPosted?: (posted: PostedSnapshot) => void;
  onFailure?: (error: unknown, failures: number, retryInMs: number) => void;
  sleep?: Sleep;
}

interface Job {
  request: UploadRequest;
  signed?: Snapshot;
  attempts: number;
}

export const sleepUnlessAborted: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * Uploads signed snapshots to `snapshots/{hostId}/{seq}.json`, one at a time, retrying failures with
 * exponential backoff and jitter for as long as it takes.
 *
 * Latest wins: there is one slot. A state submitted while another waits for a retry replaces it, so after an
 * outage the control plane gets the host's present state at once instead of a backlog of stale ones; the
 * latest state is never dropped, superseded intermediate ones may be.
 *
 * Retries and signatures: within `resignAfterMs` a retry re-sends the same bytes under the same seq, so a PUT
 * that succeeded but whose response was lost is repeated idempotently (same key, same body). Past that the
 * signature would drift towards the ingest's clock-skew window, so the state is re-signed with a fresh
 * signedAt *and a new seq*: a key is never written with two different bodies, which keeps "event id derived
 * from the object key" sound on the ingest side, and a late duplicate of the old key is merely stale.
 */
export class SnapshotUploader {
  readonly #options: SnapshotUploaderOptions;
  readonly #clock: () => Date;
  readonly #random: () => number;
  readonly #sleep: Sleep;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #resignAfterMs: number;
  readonly #attemptTimeoutMs: number;
  #pending: Job | undefined;
  #running: Promise<void> | undefined;
  #failures = 0;
  #closed = false;
  readonly #sleepAbort = new AbortController();
  readonly #attemptAbort = new AbortController();

  constructor(options: SnapshotUploaderOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleepUnlessAborted;
    this.#baseDelayMs = options.baseDelayMs ?? 200;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#resignAfterMs = options.resignAfterMs ?? 60_000;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
  }

  /** True while a submitted state has not been posted yet. */
  get pending(): boolean {
    return this.#pending !== undefined;
  }

  /** Queues a state for posting, replacing any state still waiting. Returns at once. */
  submit(request: UploadRequest): void {
    if (this.#closed) throw new Error('uploader is closed');
    this.#pending = { request, attempts: 0 };
    this.#running ??= this.#drain().finally(() => {
      this.#running = undefined;
    });
  }

  /** Resolves when everything submitted so far has been posted or superseded and posted. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Stops retrying in the background and makes one last bounded try with the latest pending state.
   * Resolves true when nothing is left unposted.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    this.#closed = true;
    this.#sleepAbort.abort();
    const deadline = AbortSignal.timeout(timeoutMs);
    if (this.#running) {
      await Promise.race([this.#running, abortedPromise(deadline)]);
      // Out of time with a PUT still in flight: cancel it rather than exit under it.
      if (deadline.aborted) this.#attemptAbort.abort();
    }
    const job = this.#pending;
    if (job && !deadline.aborted) {
      try {
        await this.#attempt(job, deadline);
      } catch (error) {
        this.#options.onFailure?.(error, this.#failures + 1, 0);
      }
    }
    return this.#pending === undefined;
  }

  async #drain(): Promise<void> {
    while (this.#pending && !this.#closed) {
      const job = this.#pending;
      try {
        await this.#attempt(job);
      } catch (error) {
        this.#failures += 1;
        if (this.#closed) return;
        const delay = this.retryDelay(this.#failures);
        this.#options.onFailure?.(error, this.#failures, delay);
        await this.#sleep(delay, this.#sleepAbort.signal);
      }
    }
  }

  /** Equal jitter: the delay still doubles per failure, yet hosts failing together spread out. */
  retryDelay(failures: number): number {
    const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (failures - 1));
    return Math.round(ceiling / 2 + (ceiling / 2) * this.#random());
  }

  async #attempt(job: Job, extraSignal?: AbortSignal): Promise<void> {
    const { hostId, secret, bucket, s3, sequence } = this.#options;
    const now = this.#clock();
    if (!job.signed || now.getTime() - Date.parse(job.signed.signedAt) > this.#resignAfterMs) {
      const seq = await sequence.next();
      job.signed = signSnapshot(secret, {
        hostId,
        seq,
        signedAt: now.toISOString(),
        state: job.request.state,
      });
    }
    const signed = job.signed;
    job.attempts += 1;
    const key = snapshotKey(hostId, signed.seq);
    const signals = [this.#attemptAbort.signal, AbortSignal.timeout(this.#attemptTimeoutMs)];
    if (extraSignal) signals.push(extraSignal);
    const abortSignal = AbortSignal.any(signals);
    if (this.#options.cdn) {
      await putThroughCdn(this.#options.cdn, key, JSON.stringify(signed), abortSignal, now);
    } else {
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          ContentType: 'application/json',
          Body: JSON.stringify(signed),
        }),
        { abortSignal },
      );
    }
    this.#failures = 0;
    if (this.#pending === job) this.#pending = undefined;
    const { reason, changes } = job.request;
    const posted: PostedSnapshot = {
      hostId,
      seq: signed.seq,
      key,
      signedAt: signed.signedAt,
      reason,
      ...(changes === undefined ? {} : { changes }),
      attempts: job.attempts,
      state: job.request.state,
    };
    try {
      this.#options.onPosted?.(posted);
    } catch {
      // The object is in S3; a failing observer (a closed stdout) must not make it look like a failed upload.
    }
  }
}

function abortedPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
