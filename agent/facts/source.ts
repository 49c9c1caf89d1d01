import type { MachineStateInput } from '../../shared/schemas.ts';

/**
 * Where a host's observed state comes from: EC2 instance metadata and the OS, or a simulation in local mode.
 * Returns the input form; the agent parses it with MachineState.parse, which fills defaults and refuses
 * anything the ingest would refuse, before it is signed.
 */
export interface FactSource {
  collect(): Promise<MachineStateInput>;
}

/** Services the host was told to run, service name → version. */
export type ServiceVersions = Readonly<Record<string, string>>;

/** Parses "call-router@1.0.0,metrics@0.3.1"; names and versions are validated later by the schema. */
export function parseServiceList(text: string): Record<string, string> {
  const services: Record<string, string> = {};
  for (const item of text.split(',')) {
    const entry = item.trim();
    if (!entry) continue;
    const at = entry.lastIndexOf('@');
    if (at <= 0 || at === entry.length - 1) {
      throw new Error(`service "${entry}" must be written name@version`);
    }
    const name = entry.slice(0, at);
    if (name in services) throw new Error(`service "${name}" is listed twice`);
    services[name] = entry.slice(at + 1);
  }
  return services;
}
