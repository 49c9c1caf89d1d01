import { readFile, stat } from 'node:fs/promises';
import { parseSimulatedDemand, type SimulatedDemand } from '../../shared/simulated-demand.ts';

/** What a simulated host asks each poll: the demand it should report now, if one is set. */
export interface DemandSource {
  read(): Promise<SimulatedDemand | undefined>;
}

/**
 * The host's demand file (local mode, written by the embedded cloud's demand simulator). Each poll costs one
 * stat: the file is read again only when its inode, modification time or size changed. Missing means no demand; a
 * file that does not parse keeps the last good one and says so once, rather than jolting the host's figures.
 */
export class DemandFile implements DemandSource {
  #seen: string | undefined;
  #demand: SimulatedDemand | undefined;

  constructor(
    private readonly path: string,
    private readonly warn: (message: string) => void = () => {},
  ) {}

  async read(): Promise<SimulatedDemand | undefined> {
    let stamp: string;
    try {
      const info = await stat(this.path);
      // A rewrite is a rename: a new inode, even when the time and size come out the same.
      stamp = `${info.ino}:${info.mtimeMs}:${info.size}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.#seen = undefined;
      this.#demand = undefined;
      return undefined;
    }
    if (stamp === this.#seen) return this.#demand;
    this.#seen = stamp;
    try {
      this.#demand = parseSimulatedDemand(await readFile(this.path, 'utf8'), this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#seen = undefined;
        this.#demand = undefined;
      } else this.warn((error as Error).message);
    }
    return this.#demand;
  }
}
