import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './state-dir.ts';

/*
 * Local mode's EC2: each host is an agent process. launch / stop / kill are the instance lifecycle
 * (run, stop gracefully, fail hard); nothing restarts a dead host by itself — that is the control plane's job.
 */

export interface HostSpec {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
  /** service → version */
  services: Record<string, string>;
  /** The secret is read from this file (0600) so it stays out of the process table and environment. */
  secretFile: string;
  /** Seeds the simulated machine facts; default: derived from the host id by the agent. */
  seed?: number;
  /** Extra or overriding environment for this agent. */
  env?: Record<string, string>;
}

export type InstanceState = 'running' | 'stopping' | 'exited';

export interface InstanceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** False when the process ended without stop() or kill() being asked for. */
  requested: boolean;
}

export interface LocalInstance {
  hostId: string;
  /** `local-<hostId>-<n>`, n counting this host's launches; a reboot keeps it, as on EC2. */
  instanceId: string;
  pid: number | undefined;
  spec: HostSpec;
  state: InstanceState;
  launchedAt: Date;
  exit?: InstanceExit;
}

export interface LocalFleetOptions {
  bucket: string;
  /** The S3 endpoint agents PUT snapshots to (the notification bridge). */
  s3Endpoint: string;
  region: string;
  /** Each agent keeps its state in `<agentsDir>/<hostId>`. */
  agentsDir: string;
  heartbeatSeconds?: number;
  pollSeconds?: number;
  /** Default: the repository's agent/main.ts, run by this Node with tsx. */
  command?: { executable: string; args: string[]; cwd: string };
  /** Each line an agent prints; default: written to this process's stdout/stderr prefixed with the host id. */
  onOutput?: (hostId: string, line: string, stream: 'stdout' | 'stderr') => void;
  /** Called when an agent process ends, asked to or not. */
  onExit?: (instance: LocalInstance, exit: InstanceExit) => void;
  /**
   * The AWS credentials of one instance (its role session on EC2), given to its agent as AWS_ACCESS_KEY_ID and
   * AWS_SECRET_ACCESS_KEY; default none (the agent signs with a placeholder).
   */
  credentials?: (instanceId: string) => { accessKeyId: string; secretAccessKey: string };
}

interface Tracked {
  instance: LocalInstance;
  child: ChildProcess;
  exited: Promise<InstanceExit>;
  requested: boolean;
}

const DEFAULT_STOP_TIMEOUT_MS = 10_000;

export function serviceList(services: Record<string, string>): string {
  return Object.entries(services)
    .map(([name, version]) => `${name}@${version}`)
    .join(',');
}

export function localInstanceId(hostId: string, launch: number): string {
  return `local-${hostId}-${launch}`;
}

export class LocalFleet {
  private readonly instances = new Map<string, Tracked>();
  private readonly launches = new Map<string, number>();

  constructor(private readonly options: LocalFleetOptions) {}

  /** Starts the host's agent; fails if that host is running already. */
  launch(spec: HostSpec): LocalInstance {
    this.assertNotRunning(spec.hostId);
    const launch = this.launchCount(spec.hostId) + 1;
    this.launches.set(spec.hostId, launch);
    return this.start(spec, localInstanceId(spec.hostId, launch));
  }

  /** How many times `launch` started this host (reboots not counted). */
  launchCount(hostId: string): number {
    return this.launches.get(hostId) ?? 0;
  }

  /** Stops the host's process (as `stop` does) and starts it again with the same spec and instance id. */
  async reboot(hostId: string, timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<LocalInstance> {
    const { spec, instanceId } = this.require(hostId).instance;
    await this.stop(hostId, timeoutMs);
    this.assertNotRunning(hostId);
    return this.start(spec, instanceId);
  }

  private assertNotRunning(hostId: string): void {
    const current = this.instances.get(hostId);
    if (current && current.instance.state !== 'exited') {
      throw new Error(`host ${hostId} is ${current.instance.state} already (pid ${current.instance.pid})`);
    }
  }

  private start(spec: HostSpec, instanceId: string): LocalInstance {
    const command = this.options.command ?? {
      // process.execPath: the Node 22 that runs this process, not whatever `node` is on the PATH.
      executable: process.execPath,
      args: [
        '--import',
        'tsx',
        '--import',
        pathToFileURL(join(repoRoot(), 'infra', 'local', 'exit-with-parent.ts')).href,
        join(repoRoot(), 'agent', 'main.ts'),
      ],
      cwd: repoRoot(),
    };
    const child = spawn(command.executable, command.args, {
      cwd: command.cwd,
      env: { ...inheritedEnv(), ...this.agentEnv(spec), ...this.credentialsEnv(instanceId) },
      // The IPC channel is how an agent notices that this process is gone (see exit-with-parent.ts).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Its own process group: a Ctrl-C in the terminal reaches only the parent, which stops agents in order.
      detached: true,
    });
    const instance: LocalInstance = {
      hostId: spec.hostId,
      instanceId,
      pid: child.pid,
      spec,
      state: 'running',
      launchedAt: new Date(),
    };
    const onOutput =
      this.options.onOutput ??
      ((hostId: string, line: string, stream: 'stdout' | 'stderr') =>
        (stream === 'stdout' ? process.stdout : process.stderr).write(`[${hostId}] ${line}\n`));
    for (const stream of ['stdout', 'stderr'] as const) {
      const source = child[stream];
      if (source)
        createInterface({ input: source }).on('line', (line) => onOutput(spec.hostId, line, stream));
    }
    const tracked: Tracked = {
      instance,
      child,
      requested: false,
      exited: new Promise<InstanceExit>((resolve) => {
        const finish = (code: number | null, signal: NodeJS.Signals | null) => {
          if (instance.state === 'exited') return;
          const exit: InstanceExit = { code, signal, requested: tracked.requested };
          instance.state = 'exited';
          instance.exit = exit;
          this.options.onExit?.(instance, exit);
          resolve(exit);
        };
        child.once('exit', finish);
        child.once('error', (error) => {
          onOutput(spec.hostId, `agent failed to start: ${error.message}`, 'stderr');
          finish(null, null);
        });
      }),
    };
    this.instances.set(spec.hostId, tracked);
    return instance;
  }

  /** SIGTERM (the agent flushes and exits), then SIGKILL after `timeoutMs`. */
  async stop(hostId: string, timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<InstanceExit> {
    const tracked = this.require(hostId);
    if (tracked.instance.state === 'exited') return tracked.exited;
    tracked.requested = true;
    tracked.instance.state = 'stopping';
    tracked.child.kill('SIGTERM');
    const timer = setTimeout(() => tracked.child.kill('SIGKILL'), timeoutMs);
    try {
      return await tracked.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL: an instance failing without warning. */
  async kill(hostId: string): Promise<InstanceExit> {
    const tracked = this.require(hostId);
    if (tracked.instance.state === 'exited') return tracked.exited;
    tracked.requested = true;
    tracked.child.kill('SIGKILL');
    return tracked.exited;
  }

  list(): LocalInstance[] {
    return [...this.instances.values()].map((tracked) => tracked.instance);
  }

  get(hostId: string): LocalInstance | undefined {
    return this.instances.get(hostId)?.instance;
  }

  async stopAll(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    await Promise.all(
      this.list()
        .filter((instance) => instance.state !== 'exited')
        .map((instance) => this.stop(instance.hostId, timeoutMs)),
    );
  }

  private agentEnv(spec: HostSpec): Record<string, string> {
    return {
      FLEETFOLD_MODE: 'local',
      FLEETFOLD_HOST_ID: spec.hostId,
      FLEETFOLD_SECRET_FILE: spec.secretFile,
      FLEETFOLD_BUCKET: this.options.bucket,
      FLEETFOLD_S3_ENDPOINT: this.options.s3Endpoint,
      AWS_REGION: this.options.region,
      FLEETFOLD_HOST_TYPE: spec.hostType,
      FLEETFOLD_GROUP: spec.group,
      FLEETFOLD_ROLES: spec.roles.join(','),
      FLEETFOLD_SERVICES: serviceList(spec.services),
      FLEETFOLD_STATE_DIR: join(this.options.agentsDir, spec.hostId),
      FLEETFOLD_HEARTBEAT_SECONDS: String(this.options.heartbeatSeconds ?? 60),
      FLEETFOLD_POLL_SECONDS: String(this.options.pollSeconds ?? 2),
      ...(spec.seed === undefined ? {} : { FLEETFOLD_SEED: String(spec.seed) }),
      ...spec.env,
    };
  }

  private credentialsEnv(instanceId: string): Record<string, string> {
    const credentials = this.options.credentials?.(instanceId);
    return credentials
      ? { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey }
      : {};
  }

  private require(hostId: string): Tracked {
    const tracked = this.instances.get(hostId);
    if (!tracked) throw new Error(`no host ${hostId} in the local fleet`);
    return tracked;
  }
}

/**
 * This process's environment minus a secret meant for some other agent, which would win over the file, and
 * minus the operator's own AWS credentials: an agent holds only the credentials of its instance.
 */
function inheritedEnv(): NodeJS.ProcessEnv {
  const {
    FLEETFOLD_SECRET: _secret,
    AWS_ACCESS_KEY_ID: _keyId,
    AWS_SECRET_ACCESS_KEY: _key,
    AWS_SESSION_TOKEN: _token,
    ...rest
  } = process.env;
  return rest;
}
