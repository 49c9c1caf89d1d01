import { spawn } from 'node:child_process';
import { canonicalJson } from '../../shared/canonical.ts';
import type { DesiredHostState, ServiceSpec } from '../../shared/groups/model.ts';
import { type AgentLogger, jsonLineLogger } from '../agent.ts';
import type { DependencyChange, DependencyListener } from '../notify.ts';
import type { HostRuntime } from '../runtime.ts';
import { runningServices, type StateApplier } from './applier.ts';
import { configFilePath, writeConfigFile } from './config-file.ts';

export type HookAction = 'start' | 'restart' | 'stop' | 'drain' | 'resume';

export interface HookStep {
  action: HookAction;
  service: string;
  version: string;
  port?: number;
}

export interface HookResult {
  /** null when the command was killed (timeout) or could not run. */
  code: number | null;
  output: string;
}

export type HookRunner = (
  command: string,
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
) => Promise<HookResult>;

/** `/bin/sh -c <command>` with the step in its environment, killed at the timeout. */
export const shellHookRunner: HookRunner = (command, env, timeoutMs) =>
  new Promise((resolve) => {
    // The hook needs PATH and the like; the step's variables are added to what the agent was given.
    const child = spawn('/bin/sh', ['-c', command], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a timeout kills what the shell started too (a hung systemctl, a sleep).
      detached: true,
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4_096);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, output: error.message });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.trim() });
    });
  });

/**
 * What must happen to each service to go from one state to the next: stops first (a new service may need
 * what an old one held), then starts and restarts, each in name order. A service whose version, port and
 * config are unchanged is left alone, unless the host starts or ends draining.
 */
export function planHooks(previous: DesiredHostState | undefined, next: DesiredHostState): HookStep[] {
  const before: Record<string, ServiceSpec> =
    previous && previous.mode !== 'stopped' ? runningServices(previous.services) : {};
  const after: Record<string, ServiceSpec> = next.mode === 'stopped' ? {} : runningServices(next.services);
  const step = (action: HookAction, service: string, spec: ServiceSpec): HookStep => ({
    action,
    service,
    version: spec.version,
    ...(spec.port === undefined ? {} : { port: spec.port }),
  });
  const stops = Object.keys(before)
    .filter((name) => !(name in after))
    .sort()
    .map((name) => step('stop', name, before[name] as ServiceSpec));
  const changes: HookStep[] = [];
  for (const name of Object.keys(after).sort()) {
    const spec = after[name] as ServiceSpec;
    const old = before[name];
    if (!old) changes.push(step('start', name, spec));
    else if (!sameSpec(old, spec)) changes.push(step('restart', name, spec));
    else if (next.mode === 'draining' && previous?.mode !== 'draining')
      changes.push(step('drain', name, spec));
    else if (next.mode === 'running' && previous?.mode === 'draining')
      changes.push(step('resume', name, spec));
  }
  return [...stops, ...changes];
}

function sameSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  return (
    a.version === b.version &&
    a.port === b.port &&
    canonicalJson(a.config ?? {}) === canonicalJson(b.config ?? {})
  );
}

export interface Ec2ApplierOptions {
  hostId: string;
  stateDir: string;
  runtime: HostRuntime;
  /** FLEETFOLD_APPLY_COMMAND, run once per step, e.g. `systemctl "$FLEETFOLD_ACTION" "fleetfold-$FLEETFOLD_SERVICE"`. */
  command?: string;
  runHook?: HookRunner;
  /** Default 120 s per step. */
  hookTimeoutMs?: number;
  logger?: AgentLogger;
}

/**
 * EC2 mode's hands: the services are the machine's own (systemd units, containers), so the agent writes the
 * config file and hands each change to the operator's hook command, with the step in its environment:
 * FLEETFOLD_ACTION (start|restart|stop|drain|resume), FLEETFOLD_SERVICE, FLEETFOLD_SERVICE_VERSION,
 * FLEETFOLD_SERVICE_PORT, FLEETFOLD_STATE_VERSION, FLEETFOLD_HOST_MODE and FLEETFOLD_CONFIG_FILE.
 * A hook that fails (non-zero, or killed at the timeout) marks its service failed in the next snapshot, and
 * the next state starts it again.
 *
 * When a service this host depends on changed, the same command runs once with FLEETFOLD_ACTION=notify,
 * FLEETFOLD_SERVICE (and FLEETFOLD_NOTIFY_SERVICE) naming that service, not one of this host's, and
 * FLEETFOLD_NOTIFY_REASON saying what changed: a hook that does not handle `notify` should exit 0 on it.
 */
export class Ec2Applier implements StateApplier, DependencyListener {
  readonly #options: Ec2ApplierOptions;
  readonly #runHook: HookRunner;
  readonly #logger: AgentLogger;
  // At boot nothing is known to run: the first state starts every service, which a restart hook tolerates.
  #previous: DesiredHostState | undefined;
  /** The state applied last, whole (#previous leaves out failed services). */
  #current: DesiredHostState | undefined;

  constructor(options: Ec2ApplierOptions) {
    this.#options = options;
    this.#runHook = options.runHook ?? shellHookRunner;
    this.#logger = options.logger ?? jsonLineLogger;
  }

  async apply(state: DesiredHostState): Promise<void> {
    const { runtime, hostId, command, stateDir } = this.#options;
    const configFile = await writeConfigFile(stateDir, state);
    runtime.setConfig(state.config);
    const steps = planHooks(this.#previous, state);
    if (!command && steps.length > 0) {
      this.#logger.info({ hostId, msg: 'no FLEETFOLD_APPLY_COMMAND: config written, services not touched' });
    }
    const failed = new Set<string>();
    for (const step of command ? steps : []) {
      const result = await this.#runHook(
        command as string,
        {
          FLEETFOLD_ACTION: step.action,
          FLEETFOLD_SERVICE: step.service,
          FLEETFOLD_SERVICE_VERSION: step.version,
          FLEETFOLD_SERVICE_PORT: step.port === undefined ? '' : String(step.port),
          FLEETFOLD_STATE_VERSION: String(state.stateVersion),
          FLEETFOLD_HOST_MODE: state.mode,
          FLEETFOLD_CONFIG_FILE: configFile,
        },
        this.#options.hookTimeoutMs ?? 120_000,
      );
      if (result.code === 0) continue;
      failed.add(step.service);
      this.#logger.warn({
        hostId,
        msg: 'apply hook failed',
        ...step,
        code: result.code,
        output: result.output,
      });
    }

    for (const name of runtime.serviceNames()) if (!(name in state.services)) runtime.removeService(name);
    for (const [name, spec] of Object.entries(state.services)) {
      const port = spec.port === undefined ? {} : { port: spec.port };
      const status =
        state.mode === 'stopped' || spec.stopped === true
          ? 'stopped'
          : failed.has(name)
            ? 'failed'
            : 'running';
      runtime.setService(name, { version: spec.version, status, ...port });
    }
    runtime.setMode(state.mode);
    runtime.setAppliedStateVersion(state.stateVersion);
    this.#current = state;
    // A failed service is remembered as not running, so the next state starts it again.
    this.#previous = {
      ...state,
      services: Object.fromEntries(Object.entries(state.services).filter(([name]) => !failed.has(name))),
    };
  }

  /**
   * Writes the config file again (its upstreams are the endpoints the services re-read) and hands the change to
   * the hook. A failing hook is logged, not retried: the next change, or the next state, runs it again.
   */
  async notify(change: DependencyChange): Promise<void> {
    const { hostId, command, stateDir } = this.#options;
    const state = this.#current;
    const configFile = state ? await writeConfigFile(stateDir, state) : configFilePath(stateDir);
    const logged = { hostId, service: change.service, reason: change.reason };
    if (!command) {
      this.#logger.info({ ...logged, msg: 'no FLEETFOLD_APPLY_COMMAND: dependency change not handed on' });
      return;
    }
    const result = await this.#runHook(
      command,
      {
        FLEETFOLD_ACTION: 'notify',
        FLEETFOLD_SERVICE: change.service,
        FLEETFOLD_NOTIFY_SERVICE: change.service,
        FLEETFOLD_NOTIFY_REASON: change.reason,
        FLEETFOLD_STATE_VERSION: state ? String(state.stateVersion) : '',
        FLEETFOLD_HOST_MODE: state?.mode ?? '',
        FLEETFOLD_CONFIG_FILE: configFile,
      },
      this.#options.hookTimeoutMs ?? 120_000,
    );
    const record = { ...logged, code: result.code, output: result.output };
    if (result.code === 0) this.#logger.info({ ...record, msg: 'notify hook ran' });
    else this.#logger.warn({ ...record, msg: 'notify hook failed' });
  }

  async stop(): Promise<void> {
    // The services belong to the machine and outlive the agent.
  }
}
