import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BROADCAST_WINDOW_MS, checkBroadcast } from '../shared/groups/broadcast.ts';
import { type AgentLogger, jsonLineLogger } from './agent.ts';

/** A service this host depends on changed (a broadcast of kind `notify`). */
export interface DependencyChange {
  service: string;
  reason: string;
  /** The hosts of this host's role the control plane meant to tell (this one among them, normally). */
  hostIds: string[];
  messageId: string;
}

/** What acts on a change: the applier re-reads the dependency's endpoints (and, on EC2, runs its hook). */
export interface DependencyListener {
  notify(change: DependencyChange): Promise<void>;
}

export type BroadcastRefusal =
  | 'malformed'
  | 'bad-signature'
  | 'not-for-me'
  | 'stale'
  | 'replayed'
  | 'unknown-kind';

export type BroadcastReceipt =
  | { status: 'acted'; messageId: string; change: DependencyChange }
  | { status: 'refused'; messageId?: string; reason: BroadcastRefusal; detail: string }
  /** Acting failed: not recorded, so a redelivery is acted on. */
  | { status: 'failed'; messageId: string; detail: string };

/** A message body that is a broadcast rather than a state: states name their host, broadcasts a role. */
export function looksLikeBroadcast(body: unknown): boolean {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const value = body as Record<string, unknown>;
  return value.hostId === undefined && typeof value.role === 'string';
}

export interface BroadcastLedgerOptions {
  stateDir: string;
  hostId: string;
  /** Ids remembered; default 512, far more broadcasts than one freshness window brings. */
  keep?: number;
}

interface LedgerFile {
  hostId: string;
  ids: string[];
}

/**
 * The ids of the last broadcasts this host acted on, kept on disk so a redelivery (or a retried wave's
 * resend) after a restart is still recognised. Only a window's worth matter: older ones are refused as stale.
 */
export class BroadcastLedger {
  readonly #file: string;
  readonly #stateDir: string;
  readonly #hostId: string;
  readonly #keep: number;
  #ids: string[] | undefined;

  constructor(options: BroadcastLedgerOptions) {
    this.#stateDir = options.stateDir;
    this.#hostId = options.hostId;
    this.#keep = Math.max(1, options.keep ?? 512);
    this.#file = join(options.stateDir, `broadcasts-${options.hostId}.json`);
  }

  async has(messageId: string): Promise<boolean> {
    return (await this.#load()).includes(messageId);
  }

  /** Persisted before it returns: a crash right after acting cannot make the same message act twice. */
  async record(messageId: string): Promise<void> {
    const ids = [...(await this.#load()).filter((id) => id !== messageId), messageId].slice(-this.#keep);
    await mkdir(this.#stateDir, { recursive: true });
    const temp = `${this.#file}.${process.pid}.tmp`;
    const body: LedgerFile = { hostId: this.#hostId, ids };
    // Write-then-rename: a crash mid-write leaves the previous file whole.
    await writeFile(temp, `${JSON.stringify(body)}\n`, 'utf8');
    await rename(temp, this.#file);
    this.#ids = ids;
  }

  async #load(): Promise<string[]> {
    this.#ids ??= await this.#read();
    return this.#ids;
  }

  async #read(): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    // A torn or foreign file must not stop the agent: the freshness window still bounds what can be replayed.
    try {
      const parsed = JSON.parse(text) as Partial<LedgerFile>;
      return parsed.hostId === this.#hostId && Array.isArray(parsed.ids)
        ? parsed.ids.filter((id): id is string => typeof id === 'string')
        : [];
    } catch {
      return [];
    }
  }
}

export interface BroadcastReceiverOptions {
  hostId: string;
  group: string;
  roles: readonly string[];
  /** The control plane's ECDSA P-256 public key. */
  publicKey: KeyObject | string;
  ledger: BroadcastLedger;
  listener: DependencyListener;
  /** The host's clock, which the broadcast's signedAt must be near; default the wall clock. */
  clock?: () => Date;
  /** Default BROADCAST_WINDOW_MS (15 min either way). */
  windowMs?: number;
  logger?: AgentLogger;
}

/**
 * The host's end of group/role broadcasts. Acts on one only when it verifies with the control plane's key, is
 * for this host's group and one of its roles, was signed within the window of this host's clock, and its
 * messageId was not acted on before; anything else is refused, and the reason logged.
 */
export class BroadcastReceiver {
  readonly #options: BroadcastReceiverOptions;
  readonly #logger: AgentLogger;
  readonly #clock: () => Date;
  // One at a time: two deliveries of the same id in one batch must not both pass the ledger check.
  #chain: Promise<unknown> = Promise.resolve();

  constructor(options: BroadcastReceiverOptions) {
    this.#options = options;
    this.#logger = options.logger ?? jsonLineLogger;
    this.#clock = options.clock ?? (() => new Date());
  }

  receive(raw: unknown): Promise<BroadcastReceipt> {
    const run = this.#chain.then(() => this.#receive(raw));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #receive(raw: unknown): Promise<BroadcastReceipt> {
    const receipt = await this.#judgeAndAct(raw);
    this.#log(receipt);
    return receipt;
  }

  async #judgeAndAct(raw: unknown): Promise<BroadcastReceipt> {
    const { publicKey, group, roles, ledger, listener } = this.#options;
    const check = checkBroadcast(
      raw,
      publicKey,
      { group, roles },
      this.#clock(),
      this.#options.windowMs ?? BROADCAST_WINDOW_MS,
    );
    if (!check.ok) {
      const messageId = messageIdOf(raw);
      return {
        status: 'refused',
        ...(messageId === undefined ? {} : { messageId }),
        reason: check.reason,
        detail: check.detail,
      };
    }
    const { messageId, payload } = check.envelope;
    if (await ledger.has(messageId)) {
      return { status: 'refused', messageId, reason: 'replayed', detail: 'already acted on' };
    }
    const change = dependencyChange(payload, messageId);
    if (!change) {
      return {
        status: 'refused',
        messageId,
        reason: 'unknown-kind',
        detail: `payload kind ${JSON.stringify(payload.kind)} is not one this agent acts on`,
      };
    }
    try {
      await listener.notify(change);
    } catch (error) {
      return { status: 'failed', messageId, detail: describe(error) };
    }
    await ledger.record(messageId);
    return { status: 'acted', messageId, change };
  }

  #log(receipt: BroadcastReceipt): void {
    const { hostId } = this.#options;
    if (receipt.status === 'acted') {
      const { service, reason } = receipt.change;
      this.#logger.info({ hostId, msg: 'dependency changed', service, reason, messageId: receipt.messageId });
    } else if (receipt.status === 'failed') {
      this.#logger.warn({ hostId, msg: 'broadcast not acted on', ...receipt });
    } else {
      // A repeat is the normal life of an at-least-once queue; the rest deserve attention.
      const record = { hostId, msg: 'broadcast refused', ...receipt };
      if (receipt.reason === 'replayed') this.#logger.info(record);
      else this.#logger.warn(record);
    }
  }
}

function dependencyChange(payload: Record<string, unknown>, messageId: string): DependencyChange | undefined {
  if (payload.kind !== 'notify' || typeof payload.service !== 'string') return undefined;
  const hostIds = Array.isArray(payload.hostIds)
    ? payload.hostIds.filter((id): id is string => typeof id === 'string')
    : [];
  return {
    service: payload.service,
    reason: typeof payload.reason === 'string' ? payload.reason : '',
    hostIds,
    messageId,
  };
}

function messageIdOf(raw: unknown): string | undefined {
  const id = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).messageId : undefined;
  return typeof id === 'string' ? id.slice(0, 128) : undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
