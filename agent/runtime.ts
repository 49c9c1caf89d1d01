import type { ServiceInstance } from '../shared/schemas.ts';
import type { ServiceVersions } from './facts/source.ts';

export type HostMode = 'running' | 'draining' | 'stopped';

/** What the host actually runs right now, as the fact sources report it. */
export interface RuntimeReport {
  mode: HostMode;
  services: Record<string, ServiceInstance>;
  config: Record<string, string>;
  /** Undefined until a desired state has been applied. */
  appliedStateVersion?: number;
}

/**
 * The one mutable record of what is running, shared by the applier (which changes it) and the fact source
 * (which reports it): snapshots then tell what really runs, not what the host was told at boot.
 */
export class HostRuntime {
  #mode: HostMode = 'running';
  readonly #services = new Map<string, ServiceInstance>();
  #config: Record<string, string> = {};
  #appliedStateVersion: number | undefined;

  /** Boot-time services (FLEETFOLD_SERVICES) count as running until a desired state says otherwise. */
  constructor(initial: ServiceVersions = {}) {
    for (const [name, version] of Object.entries(initial)) {
      this.#services.set(name, { version, status: 'running' });
    }
  }

  report(): RuntimeReport {
    return {
      mode: this.#mode,
      services: Object.fromEntries([...this.#services].map(([name, instance]) => [name, { ...instance }])),
      config: { ...this.#config },
      ...(this.#appliedStateVersion === undefined ? {} : { appliedStateVersion: this.#appliedStateVersion }),
    };
  }

  get mode(): HostMode {
    return this.#mode;
  }

  service(name: string): ServiceInstance | undefined {
    const instance = this.#services.get(name);
    return instance ? { ...instance } : undefined;
  }

  serviceNames(): string[] {
    return [...this.#services.keys()];
  }

  setService(name: string, instance: ServiceInstance): void {
    this.#services.set(name, { ...instance });
  }

  removeService(name: string): void {
    this.#services.delete(name);
  }

  setMode(mode: HostMode): void {
    this.#mode = mode;
  }

  setConfig(values: Readonly<Record<string, string>>): void {
    this.#config = { ...values };
  }

  setAppliedStateVersion(version: number): void {
    this.#appliedStateVersion = version;
  }
}
