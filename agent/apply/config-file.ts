import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredHostState } from '../../shared/groups/model.ts';

export interface ConfigFile {
  hostId: string;
  stateVersion: number;
  mode: DesiredHostState['mode'];
  /** Host-wide key-values. */
  values: Record<string, string>;
  /** Per service: its version, port and key-values. */
  services: Record<string, { version: string; port?: number; config: Record<string, string> }>;
  upstreams?: Record<string, string[]>;
}

export function configFilePath(stateDir: string): string {
  return join(stateDir, 'config.json');
}

/** Writes `<stateDir>/config.json` whole (write-then-rename), so a service reading it never sees half a file. */
export async function writeConfigFile(stateDir: string, state: DesiredHostState): Promise<string> {
  const body: ConfigFile = {
    hostId: state.hostId,
    stateVersion: state.stateVersion,
    mode: state.mode,
    values: state.config,
    services: Object.fromEntries(
      Object.entries(state.services).map(([name, spec]) => [
        name,
        {
          version: spec.version,
          ...(spec.port === undefined ? {} : { port: spec.port }),
          config: spec.config ?? {},
        },
      ]),
    ),
    ...(state.upstreams ? { upstreams: state.upstreams } : {}),
  };
  const path = configFilePath(stateDir);
  await mkdir(stateDir, { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(body, null, 2)}\n`, 'utf8');
  await rename(temp, path);
  return path;
}
