import type { DesiredHostState, ServiceSpec } from '../../shared/groups/model.ts';
import { type AgentLogger, jsonLineLogger } from '../agent.ts';
import { LbProxy, type UpstreamTable } from '../lb-proxy.ts';
import type { DependencyChange, DependencyListener } from '../notify.ts';
import type { HostRuntime } from '../runtime.ts';
import { runningServices, type StateApplier } from './applier.ts';
import { writeConfigFile } from './config-file.ts';
import { nodeServiceStarter, type RunningService, type ServiceStarter } from './service-runner.ts';

export const LB_SERVICE = 'lb';

export interface LocalApplierOptions {
  hostId: string;
  stateDir: string;
  runtime: HostRuntime;
  /** Default: agent/service-process.ts under this process's Node and tsx. */
  startService?: ServiceStarter;
  /** The service that is the host's load balancer (run in-process as a proxy); default "lb". */
  lbService?: string;
  logger?: AgentLogger;
}

interface Instance {
  version: string;
  requestedPort: number | undefined;
  running?: RunningService;
  failed: boolean;
}

interface Balancer {
  proxy: LbProxy;
  version: string;
  requestedPort: number | undefined;
}

/**
 * Local mode's hands: each service of the state is a small process answering with its name and version, and
 * the `lb` service is a reverse proxy over the state's upstreams. Changing a version stops the old process
 * before starting the new one (it may want the same port). What really runs is written to the runtime record,
 * so the next snapshot reports it, failures included.
 */
export class LocalApplier implements StateApplier, DependencyListener {
  readonly #options: LocalApplierOptions;
  readonly #start: ServiceStarter;
  readonly #lbName: string;
  readonly #logger: AgentLogger;
  readonly #instances = new Map<string, Instance>();
  /**
   * The port each service last listened on. A service whose state says "any port" (0 or none) gets it again
   * when a new version replaces it, so the load balancers in front of this host stay right across an update.
   */
  readonly #lastPorts = new Map<string, number>();
  #balancer: Balancer | undefined;
  /** The state applied last: what a dependency's change is re-read against. */
  #current: DesiredHostState | undefined;
  // One change at a time: an apply racing a stop could start a process nobody would stop.
  #chain: Promise<void> = Promise.resolve();

  constructor(options: LocalApplierOptions) {
    this.#options = options;
    this.#start = options.startService ?? nodeServiceStarter();
    this.#lbName = options.lbService ?? LB_SERVICE;
    this.#logger = options.logger ?? jsonLineLogger;
  }

  apply(state: DesiredHostState): Promise<void> {
    return this.#serialize(() => this.#apply(state));
  }

  /**
   * A service this host depends on changed: the endpoints of the state applied last are read again (the config
   * file rewritten, the balancer's upstreams set again). Its new endpoints came in a state of their own; this
   * only makes sure nothing is left holding the old ones.
   */
  notify(change: DependencyChange): Promise<void> {
    return this.#serialize(async () => {
      const state = this.#current;
      if (!state) return;
      await writeConfigFile(this.#options.stateDir, state);
      try {
        this.#balancer?.proxy.update(state.upstreams ?? {});
      } catch (error) {
        this.#logger.warn({
          hostId: this.#options.hostId,
          msg: 'load balancer not updated',
          service: change.service,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    });
  }

  stop(): Promise<void> {
    return this.#serialize(async () => {
      const instances = [...this.#instances.values()];
      this.#instances.clear();
      await Promise.all([
        ...instances.map((instance) => instance.running?.stop()),
        this.#balancer?.proxy.stop(),
      ]);
      this.#balancer = undefined;
    });
  }

  #serialize(task: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(task);
    this.#chain = run.catch(() => {});
    return run;
  }

  async #apply(state: DesiredHostState): Promise<void> {
    const { runtime, stateDir } = this.#options;
    await writeConfigFile(stateDir, state);
    runtime.setConfig(state.config);
    const wanted: Record<string, ServiceSpec> =
      state.mode === 'stopped' ? {} : runningServices(state.services);

    const stopping: Promise<void>[] = [];
    for (const [name, instance] of this.#instances) {
      const spec = wanted[name];
      const unchanged =
        spec !== undefined &&
        !instance.failed &&
        instance.version === spec.version &&
        instance.requestedPort === spec.port;
      if (unchanged) continue;
      this.#instances.delete(name);
      if (instance.running) {
        this.#lastPorts.set(name, instance.running.port);
        stopping.push(instance.running.stop());
      }
    }
    await Promise.all(stopping);

    await this.#applyBalancer(wanted[this.#lbName], state.upstreams ?? {});
    await Promise.all(
      Object.entries(wanted)
        .filter(([name]) => name !== this.#lbName && !this.#instances.has(name))
        .map(([name, spec]) => this.#startService(name, spec)),
    );

    for (const name of runtime.serviceNames()) if (!(name in wanted)) runtime.removeService(name);
    // Stopped on purpose (the whole host, or one service): reported stopped, which no default rule restarts.
    for (const [name, spec] of Object.entries(state.services)) {
      if (state.mode === 'stopped' || spec.stopped === true)
        runtime.setService(name, { version: spec.version, status: 'stopped' });
    }
    runtime.setMode(state.mode);
    runtime.setAppliedStateVersion(state.stateVersion);
    this.#current = state;
  }

  async #startService(name: string, spec: ServiceSpec): Promise<void> {
    const { runtime, hostId } = this.#options;
    const instance: Instance = { version: spec.version, requestedPort: spec.port, failed: false };
    this.#instances.set(name, instance);
    runtime.setService(name, { version: spec.version, status: 'starting' });
    const previous = spec.port ? undefined : this.#lastPorts.get(name);
    const start = (port: number | undefined) =>
      this.#start(
        { service: name, version: spec.version, hostId, ...(port === undefined ? {} : { port }) },
        (exit) => {
          if (this.#instances.get(name) !== instance) return;
          // Reported, not restarted: a crashing service is the control plane's to judge (replace, alarm).
          instance.failed = true;
          runtime.setService(name, {
            version: spec.version,
            status: 'failed',
            ...(instance.running ? { port: instance.running.port } : {}),
          });
          this.#logger.warn({ hostId, msg: 'service exited', service: name, version: spec.version, ...exit });
        },
      );
    try {
      // The old port may have been taken meanwhile: then any free one will do.
      instance.running =
        previous === undefined ? await start(spec.port) : await start(previous).catch(() => start(spec.port));
      runtime.setService(name, { version: spec.version, status: 'running', port: instance.running.port });
    } catch (error) {
      instance.failed = true;
      runtime.setService(name, { version: spec.version, status: 'failed' });
      this.#logger.warn({
        hostId,
        msg: 'service failed to start',
        service: name,
        version: spec.version,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  async #applyBalancer(spec: ServiceSpec | undefined, upstreams: UpstreamTable): Promise<void> {
    const { runtime, hostId } = this.#options;
    const name = this.#lbName;
    const current = this.#balancer;
    if (current && (!spec || current.requestedPort !== spec.port)) {
      this.#balancer = undefined;
      await current.proxy.stop();
    }
    if (!spec) return;
    const fail = (error: unknown) => {
      this.#logger.warn({
        hostId,
        msg: 'load balancer not updated',
        error: error instanceof Error ? error.message : String(error),
      });
    };
    if (this.#balancer) {
      this.#balancer.version = spec.version;
      try {
        this.#balancer.proxy.update(upstreams);
      } catch (error) {
        // The proxy keeps its current members: better than none.
        fail(error);
      }
      runtime.setService(name, { version: spec.version, status: 'running', port: this.#balancer.proxy.port });
      return;
    }
    let proxy: LbProxy | undefined;
    try {
      proxy = new LbProxy({ upstreams, ...(spec.port === undefined ? {} : { port: spec.port }) });
      const port = await proxy.start();
      this.#balancer = { proxy, version: spec.version, requestedPort: spec.port };
      runtime.setService(name, { version: spec.version, status: 'running', port });
    } catch (error) {
      await proxy?.stop();
      runtime.setService(name, { version: spec.version, status: 'failed' });
      fail(error);
    }
  }
}
