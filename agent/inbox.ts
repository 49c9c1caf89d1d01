import { createPublicKey, type KeyObject } from 'node:crypto';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DeleteMessageBatchCommand,
  GetQueueUrlCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { DesiredHostState } from '../shared/groups/model.ts';
import type { StateEnvelope } from '../shared/groups/ports.ts';
import { checkEnvelope, sha256Hex } from '../shared/state-envelope.ts';
import { type AgentLogger, jsonLineLogger } from './agent.ts';
import type { AppliedStateStore } from './applied-state.ts';
import { parseDesiredState } from './desired-state.ts';
import { type BroadcastReceipt, type BroadcastReceiver, looksLikeBroadcast } from './notify.ts';
import { type Sleep, sleepUnlessAborted } from './uploader.ts';

export type IgnoreReason =
  | 'malformed'
  | 'bad-signature'
  | 'not-for-me'
  | 'inconsistent'
  | 'stale'
  | 'superseded'
  | 'digest-mismatch'
  | 'missing-object';

export interface BatchOutcome {
  /** The state version applied from this batch, if any. */
  applied?: number;
  /** Messages deleted without being applied. */
  ignored: { messageId: string; stateVersion?: number; reason: IgnoreReason; detail?: string }[];
  /** Messages left on the queue to come back (a transient failure). */
  kept: { messageId: string; stateVersion: number; detail: string }[];
  /** The batch's broadcasts (present only when it had some): acted on, refused (deleted) or failed (kept). */
  broadcasts?: { messageId: string; receipt: BroadcastReceipt }[];
}

export interface StateInboxOptions {
  hostId: string;
  sqs: SQSClient;
  /** The queue URL (local mode), or its name to resolve with GetQueueUrl (EC2). */
  queue: { url: string } | { name: string };
  /** Fetches states too large for a message. */
  s3: S3Client;
  /** The control plane's ECDSA P-256 public key. */
  publicKey: KeyObject | string;
  applied: AppliedStateStore;
  apply: (state: DesiredHostState) => Promise<void>;
  /** After a state was applied and recorded: the agent reports it at once. */
  onApplied?: (state: DesiredHostState) => void;
  logger?: AgentLogger;
  /**
   * Acts on the group/role broadcasts that arrive in the same queue (see BroadcastReceiver); without one they
   * are deleted as not states.
   */
  broadcasts?: BroadcastReceiver;
  /** Long-poll wait; default 20 s (the SQS maximum, the fewest empty receives). */
  waitTimeSeconds?: number;
  /**
   * Pause after an empty receive before the next long poll; default 0. SQS bills every receive, an empty one
   * too: a 20 s pause halves the polls, and a state published during the pause waits for the rest of it.
   */
  idleSeconds?: number;
  /** Backoff after a failed receive; default 1 s doubling to 30 s. */
  retry?: { baseDelayMs?: number; maxDelayMs?: number; sleep?: Sleep };
}

interface Candidate {
  message: Message;
  envelope: StateEnvelope;
}

type Resolved =
  | { ok: true; state: DesiredHostState }
  | { ok: false; permanent: true; reason: IgnoreReason; detail: string }
  | { ok: false; permanent: false; detail: string };

/**
 * The host's end of the fan-out: long-polls its own SQS queue for signed desired states and applies them.
 *
 * Nothing unverified is acted on, and nothing that can never be acted on stays on the queue: a message with a
 * bad signature, for another host, malformed, or not newer than what was applied is logged and deleted, so a
 * poison message cannot loop. Deliveries may repeat or arrive out of order, so only the highest version of a
 * batch is applied and the lower ones are deleted as superseded. A message is deleted only after its state
 * was applied and recorded; a failed apply or a failed fetch leaves it to come back.
 */
export class StateInbox {
  readonly #options: StateInboxOptions;
  readonly #logger: AgentLogger;
  readonly #publicKey: KeyObject;
  #queueUrl: string | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #abort = new AbortController();

  constructor(options: StateInboxOptions) {
    this.#options = options;
    this.#logger = options.logger ?? jsonLineLogger;
    this.#publicKey =
      typeof options.publicKey === 'string' ? createPublicKey(options.publicKey) : options.publicKey;
    if ('url' in options.queue) this.#queueUrl = options.queue.url;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#loop = this.#receiveLoop();
  }

  /** Ends the long poll at once; a batch being applied is finished first. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#abort.abort();
    await this.#loop;
    this.#loop = undefined;
  }

  /** One receive and the handling of what it brought (the loop's body; tests drive it directly). */
  async receiveOnce(signal?: AbortSignal): Promise<BatchOutcome> {
    return this.handle(await this.#receive(signal));
  }

  async #receive(signal?: AbortSignal): Promise<Message[]> {
    const queueUrl = await this.#resolveQueueUrl(signal);
    const received = await this.#options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: this.#options.waitTimeSeconds ?? 20,
      }),
      signal ? { abortSignal: signal } : {},
    );
    return received.Messages ?? [];
  }

  async handle(messages: readonly Message[]): Promise<BatchOutcome> {
    const outcome: BatchOutcome = { ignored: [], kept: [] };
    if (messages.length === 0) return outcome;
    const toDelete: Message[] = [];
    const ignore = (message: Message, reason: IgnoreReason, detail?: string, stateVersion?: number) => {
      outcome.ignored.push({
        messageId: message.MessageId ?? '?',
        reason,
        ...(stateVersion === undefined ? {} : { stateVersion }),
        ...(detail === undefined ? {} : { detail }),
      });
      toDelete.push(message);
    };

    const floor = await this.#options.applied.lastVersion();
    const candidates: Candidate[] = [];
    const broadcasts: { message: Message; body: unknown }[] = [];
    for (const message of messages) {
      let body: unknown;
      try {
        body = JSON.parse(message.Body ?? '');
      } catch {
        ignore(message, 'malformed', 'body is not JSON');
        continue;
      }
      if (this.#options.broadcasts && looksLikeBroadcast(body)) {
        broadcasts.push({ message, body });
        continue;
      }
      const check = checkEnvelope(body, this.#publicKey, this.#options.hostId);
      if (!check.ok) {
        ignore(message, check.reason, check.detail);
        continue;
      }
      const { stateVersion } = check.envelope;
      if (stateVersion <= floor) {
        ignore(message, 'stale', `version ${stateVersion} is not above applied ${floor}`, stateVersion);
        continue;
      }
      candidates.push({ message, envelope: check.envelope });
    }

    candidates.sort((a, b) => b.envelope.stateVersion - a.envelope.stateVersion);
    let chosen: { candidate: Candidate; state: DesiredHostState } | undefined;
    for (const candidate of candidates) {
      const { stateVersion } = candidate.envelope;
      if (chosen) {
        ignore(
          candidate.message,
          'superseded',
          `version ${chosen.state.stateVersion} came in the same batch`,
          stateVersion,
        );
        continue;
      }
      const resolved = await this.#resolve(candidate.envelope);
      if (resolved.ok) chosen = { candidate, state: resolved.state };
      else if (resolved.permanent) ignore(candidate.message, resolved.reason, resolved.detail, stateVersion);
      else
        outcome.kept.push({
          messageId: candidate.message.MessageId ?? '?',
          stateVersion,
          detail: resolved.detail,
        });
    }

    if (chosen) {
      const { state } = chosen;
      try {
        await this.#options.apply(state);
        await this.#options.applied.save(state);
        toDelete.push(chosen.candidate.message);
        outcome.applied = state.stateVersion;
      } catch (error) {
        outcome.kept.push({
          messageId: chosen.candidate.message.MessageId ?? '?',
          stateVersion: state.stateVersion,
          detail: `apply failed: ${describe(error)}`,
        });
      }
    }

    // After the state: a dependency's change is acted on against the newest state this batch brought.
    if (broadcasts.length > 0) {
      outcome.broadcasts = [];
      for (const { message, body } of broadcasts) {
        const receipt = await this.#receiveBroadcast(body);
        outcome.broadcasts.push({ messageId: message.MessageId ?? '?', receipt });
        // A failed action stays on the queue to come back; anything refused never will be acted on.
        if (receipt.status !== 'failed') toDelete.push(message);
      }
    }

    await this.#delete(toDelete);
    this.#log(outcome);
    if (chosen && outcome.applied !== undefined) {
      try {
        this.#options.onApplied?.(chosen.state);
      } catch (error) {
        this.#logger.warn({ hostId: this.#options.hostId, msg: 'onApplied failed', error: describe(error) });
      }
    }
    return outcome;
  }

  async #receiveBroadcast(body: unknown): Promise<BroadcastReceipt> {
    const receiver = this.#options.broadcasts as BroadcastReceiver;
    try {
      return await receiver.receive(body);
    } catch (error) {
      // The ledger could not be read or written: the message comes back, and is judged again then.
      const messageId = (body as { messageId?: unknown }).messageId;
      this.#logger.warn({
        hostId: this.#options.hostId,
        msg: 'broadcast not handled',
        error: describe(error),
      });
      return {
        status: 'failed',
        messageId: typeof messageId === 'string' ? messageId : '?',
        detail: describe(error),
      };
    }
  }

  async #receiveLoop(): Promise<void> {
    const base = this.#options.retry?.baseDelayMs ?? 1_000;
    const max = this.#options.retry?.maxDelayMs ?? 30_000;
    const sleep = this.#options.retry?.sleep ?? sleepUnlessAborted;
    let failures = 0;
    const idleMs = (this.#options.idleSeconds ?? 0) * 1000;
    while (this.#running) {
      try {
        const messages = await this.#receive(this.#abort.signal);
        await this.handle(messages);
        failures = 0;
        // Only after an empty receive: a batch may have company behind it, fetched at once.
        if (messages.length === 0 && idleMs > 0) await sleep(idleMs, this.#abort.signal);
      } catch (error) {
        if (!this.#running) break;
        failures += 1;
        const delay = Math.min(max, base * 2 ** (failures - 1));
        this.#logger.warn({
          hostId: this.#options.hostId,
          msg: 'inbox receive failed',
          error: describe(error),
          failures,
          retryInMs: delay,
        });
        await sleep(delay, this.#abort.signal);
      }
    }
  }

  async #resolveQueueUrl(signal: AbortSignal | undefined): Promise<string> {
    if (this.#queueUrl) return this.#queueUrl;
    const { queue } = this.#options;
    if (!('name' in queue)) throw new Error('inbox has neither a queue URL nor a name');
    const { QueueUrl } = await this.#options.sqs.send(
      new GetQueueUrlCommand({ QueueName: queue.name }),
      signal ? { abortSignal: signal } : {},
    );
    if (!QueueUrl) throw new Error(`GetQueueUrl returned no URL for ${queue.name}`);
    this.#queueUrl = QueueUrl;
    return QueueUrl;
  }

  async #resolve(envelope: StateEnvelope): Promise<Resolved> {
    let raw: unknown = envelope.state;
    if (raw === undefined && envelope.ref) {
      const { bucket, key, sha256 } = envelope.ref;
      let text: string;
      try {
        const object = await this.#options.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        text = (await object.Body?.transformToString('utf8')) ?? '';
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'NoSuchKey' || name === 'NotFound') {
          return { ok: false, permanent: true, reason: 'missing-object', detail: `s3://${bucket}/${key}` };
        }
        return { ok: false, permanent: false, detail: `fetching s3://${bucket}/${key}: ${describe(error)}` };
      }
      // The signature covers the digest, not the object: only a matching digest makes the object signed too.
      if (sha256Hex(text) !== sha256) {
        return {
          ok: false,
          permanent: true,
          reason: 'digest-mismatch',
          detail: `s3://${bucket}/${key} does not match its signed sha256`,
        };
      }
      try {
        raw = JSON.parse(text);
      } catch {
        return {
          ok: false,
          permanent: true,
          reason: 'malformed',
          detail: `s3://${bucket}/${key} is not JSON`,
        };
      }
    }
    let state: DesiredHostState;
    try {
      state = parseDesiredState(raw);
    } catch (error) {
      return { ok: false, permanent: true, reason: 'malformed', detail: describe(error) };
    }
    if (state.hostId !== envelope.hostId || state.stateVersion !== envelope.stateVersion) {
      return {
        ok: false,
        permanent: true,
        reason: 'inconsistent',
        detail: 'the state names another host or version than its envelope',
      };
    }
    return { ok: true, state };
  }

  async #delete(messages: readonly Message[]): Promise<void> {
    const entries = messages
      .filter((message) => message.ReceiptHandle)
      .map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle }));
    if (entries.length === 0 || !this.#queueUrl) return;
    try {
      const result = await this.#options.sqs.send(
        new DeleteMessageBatchCommand({ QueueUrl: this.#queueUrl, Entries: entries }),
      );
      if (result.Failed?.length) {
        this.#logger.warn({
          hostId: this.#options.hostId,
          msg: 'inbox delete failed',
          failed: result.Failed.map((failure) => failure.Message ?? failure.Code),
        });
      }
    } catch (error) {
      // The messages come back after the visibility timeout and are then stale: harmless, only a repeat.
      this.#logger.warn({ hostId: this.#options.hostId, msg: 'inbox delete failed', error: describe(error) });
    }
  }

  #log(outcome: BatchOutcome): void {
    const { hostId } = this.#options;
    if (outcome.applied !== undefined) {
      this.#logger.info({ hostId, msg: 'desired state applied', stateVersion: outcome.applied });
    }
    for (const ignored of outcome.ignored) {
      const record = { hostId, msg: 'desired state ignored', ...ignored };
      // Stale and superseded are the normal life of an at-least-once queue; the rest deserve attention.
      if (ignored.reason === 'stale' || ignored.reason === 'superseded') this.#logger.info(record);
      else this.#logger.warn(record);
    }
    for (const kept of outcome.kept) {
      this.#logger.warn({ hostId, msg: 'desired state kept for retry', ...kept });
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
