import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { parseDesiredState } from './desired-state.ts';

export interface AppliedStateOptions {
  stateDir: string;
  hostId: string;
}

interface AppliedStateFile {
  hostId: string;
  stateVersion: number;
  state: DesiredHostState;
}

/**
 * The last desired state this host applied, kept on disk. Its version is the floor below which messages are
 * ignored (versions only move forward, across restarts too), and the state itself is re-applied at boot, since
 * a redelivery of it would be ignored as not new.
 */
export class AppliedStateStore {
  readonly #file: string;
  readonly #stateDir: string;
  readonly #hostId: string;
  #loaded: { state: DesiredHostState | undefined } | undefined;

  constructor(options: AppliedStateOptions) {
    this.#stateDir = options.stateDir;
    this.#hostId = options.hostId;
    this.#file = join(options.stateDir, `applied-state-${options.hostId}.json`);
  }

  async load(): Promise<DesiredHostState | undefined> {
    this.#loaded ??= { state: await this.#read() };
    return this.#loaded.state;
  }

  /** 0 when nothing was ever applied. */
  async lastVersion(): Promise<number> {
    return (await this.load())?.stateVersion ?? 0;
  }

  async save(state: DesiredHostState): Promise<void> {
    await mkdir(this.#stateDir, { recursive: true });
    const body: AppliedStateFile = { hostId: this.#hostId, stateVersion: state.stateVersion, state };
    // Write-then-rename: a crash mid-write leaves the previous file whole.
    const temp = `${this.#file}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify(body)}\n`, 'utf8');
    await rename(temp, this.#file);
    this.#loaded = { state };
  }

  async #read(): Promise<DesiredHostState | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    // A torn or foreign file must not stop the agent; the control plane resends the current state anyway.
    try {
      const parsed = JSON.parse(text) as Partial<AppliedStateFile>;
      if (parsed.hostId !== this.#hostId) return undefined;
      const state = parseDesiredState(parsed.state);
      return state.hostId === this.#hostId && state.stateVersion === parsed.stateVersion ? state : undefined;
    } catch {
      return undefined;
    }
  }
}
