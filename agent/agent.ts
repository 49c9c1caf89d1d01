import type { S3Client } from '@aws-sdk/client-s3';
import { type BandThresholds, DEFAULT_BANDS, splitMetrics } from '../shared/metrics.ts';
import { MachineState } from '../shared/schemas.ts';
import type { CdnUpload } from './cdn-upload.ts';
import { decidePost, type LastPost } from './change-detector.ts';
import type { FactSource } from './facts/source.ts';
import { SnapshotSequence } from './sequence.ts';
import { type PostedSnapshot, type SequenceSource, type Sleep, SnapshotUploader } from './uploader.ts';

export interface AgentLogger {
  /** One structured record; the default writes it as a JSON line. */
  info(record: Record<string, unknown>): void;
  warn(record: Record<string, unknown>): void;
}

export const jsonLineLogger: AgentLogger = {
  info: (record) => process.stdout.write(`${JSON.stringify(record)}\n`),
  warn: (record) => process.stderr.write(`${JSON.stringify(record)}\n`),
};

export interface HostAgentOptions {
  hostId: string;
  secret: string;
  bucket: string;
  s3: S3Client;
  /** Snapshots go through the CloudFront distribution (signed policy) instead of straight to S3. */
  cdn?: CdnUpload;
  factSource: FactSource;
  /** Where the sequence file lives; required unless `sequence` is given. */
  stateDir?: string;
  sequence?: SequenceSource;
  /** A post without change at least this often; default 3600 s (an EC2 fleet's lastSeen need not be finer). */
  heartbeatSeconds?: number;
  /** How often facts are collected; default 5 s. */
  pollSeconds?: number;
  thresholds?: BandThresholds;
  clock?: () => Date;
  logger?: AgentLogger;
  /** How long stop() may spend on the last post; default 5 s. */
  flushTimeoutMs?: number;
  /** Retry tuning, passed to the uploader (tests make retries instant and jitter deterministic). */
  retry?: { baseDelayMs?: number; maxDelayMs?: number; random?: () => number; sleep?: Sleep };
}

/**
 * The host side of "write only on change": collect facts on a short cadence, post a signed snapshot when the
 * tracked state changed or a heartbeat is due, and let the uploader retry until it lands.
 *
 * Receiving desired states is a separate module beside this one (inbox.ts, apply/); all it needs from the agent
 * is `pollNow()`, so the state it applied is reported at once (appliedStateVersion is tracked state).
 */
export class HostAgent {
  readonly #options: HostAgentOptions;
  readonly #uploader: SnapshotUploader;
  readonly #clock: () => Date;
  readonly #logger: AgentLogger;
  readonly #thresholds: BandThresholds;
  #last: LastPost | undefined;
  #lastPostedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #running = false;

  constructor(options: HostAgentOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => new Date());
    this.#logger = options.logger ?? jsonLineLogger;
    this.#thresholds = options.thresholds ?? DEFAULT_BANDS;
    const sequence =
      options.sequence ??
      new SnapshotSequence({ stateDir: requireStateDir(options.stateDir), hostId: options.hostId });
    this.#uploader = new SnapshotUploader({
      s3: options.s3,
      bucket: options.bucket,
      hostId: options.hostId,
      secret: options.secret,
      sequence,
      ...(options.cdn ? { cdn: options.cdn } : {}),
      clock: this.#clock,
      ...options.retry,
      onPosted: (posted) => this.#posted(posted),
      onFailure: (error, failures, retryInMs) =>
        this.#logger.warn({
          hostId: options.hostId,
          msg: 'snapshot upload failed',
          error: describe(error),
          failures,
          retryInMs,
        }),
    });
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#loop();
  }

  /**
   * Stops collecting and makes one bounded attempt to post the latest unposted state.
   * Resolves true when nothing was left unposted.
   */
  async stop(): Promise<boolean> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#polling;
    return this.#uploader.flush(this.#options.flushTimeoutMs ?? 5_000);
  }

  /** Collects once and submits a post if one is due; overlapping calls share one collection. */
  pollNow(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  /** Resolves when every submitted state has been posted (tests, and a clean hand-over before stop). */
  idle(): Promise<void> {
    return this.#uploader.idle();
  }

  async #loop(): Promise<void> {
    if (!this.#running) return;
    await this.pollNow();
    if (!this.#running) return;
    // Chained timeouts, not an interval: a slow collection delays the next one instead of piling up.
    this.#timer = setTimeout(() => void this.#loop(), (this.#options.pollSeconds ?? 5) * 1000);
  }

  async #poll(): Promise<void> {
    const { hostId } = this.#options;
    let state: MachineState;
    try {
      state = MachineState.parse(await this.#options.factSource.collect());
    } catch (error) {
      // A failed read (IMDS hiccup, a bad service list) skips one round; the next may succeed.
      this.#logger.warn({ hostId, msg: 'fact collection failed', error: describe(error) });
      return;
    }
    const now = this.#clock().getTime();
    const decision = decidePost(state, this.#last, now, {
      heartbeatMs: (this.#options.heartbeatSeconds ?? 3_600) * 1000,
      thresholds: this.#thresholds,
    });
    if (!decision.post) return;
    // A heartbeat while a post is still being retried would only replace it with the same tracked state.
    if (decision.reason === 'heartbeat' && this.#uploader.pending) return;
    // Compared against what was handed over, not what has landed: the uploader retries until a state lands or a
    // newer one replaces it, so re-submitting an unchanged state during an outage would gain nothing.
    this.#last = { tracked: splitMetrics(state, this.#thresholds).tracked, postedAt: this.#lastPostedAt };
    this.#uploader.submit({
      state,
      reason: decision.reason,
      ...(decision.changes === undefined ? {} : { changes: decision.changes }),
    });
  }

  #posted(posted: PostedSnapshot): void {
    this.#lastPostedAt = this.#clock().getTime();
    if (this.#last) this.#last = { ...this.#last, postedAt: this.#lastPostedAt };
    const { hostId, seq, reason, changes } = posted;
    this.#logger.info(changes === undefined ? { hostId, seq, reason } : { hostId, seq, reason, changes });
  }
}

function requireStateDir(stateDir: string | undefined): string {
  if (!stateDir)
    throw new Error('HostAgent needs stateDir (or a sequence) to keep seq increasing across restarts');
  return stateDir;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
