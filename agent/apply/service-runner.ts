import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVICE_SCRIPT = fileURLToPath(new URL('../service-process.ts', import.meta.url));

export interface ServiceProcessSpec {
  service: string;
  version: string;
  hostId: string;
  /** 0 or absent: a free port. */
  port?: number;
}

export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningService {
  readonly service: string;
  readonly version: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** Resolves when the process has ended, asked to or not. */
  readonly exited: Promise<ServiceExit>;
  /** SIGTERM, then SIGKILL after `timeoutMs` (default 5 s); resolves once the process is gone. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Starts one service instance; the port is known once it resolves. Injectable so appliers can be unit-tested. */
export type ServiceStarter = (
  spec: ServiceProcessSpec,
  onUnexpectedExit: (exit: ServiceExit) => void,
) => Promise<RunningService>;

export interface ServiceStarterOptions {
  /** How long a process may take to report its port; default 30 s (tsx compiles on a loaded machine). */
  startTimeoutMs?: number;
  /** Each line a service prints. */
  onOutput?: (service: string, line: string) => void;
}

/*
 * Every child this process started, so none outlives it: an exit handler kills what is left (a crash, a
 * test that forgot to stop), and the IPC channel covers the case where this process is killed outright.
 */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const orphan of live) orphan.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** How many service processes this process has running (tests assert they leave none). */
export function liveServiceProcesses(): number {
  return live.size;
}

/**
 * Runs agent/service-process.ts with this process's own Node and tsx, so a local host needs nothing the
 * agent did not already have.
 */
export function nodeServiceStarter(options: ServiceStarterOptions = {}): ServiceStarter {
  return (spec, onUnexpectedExit) =>
    new Promise<RunningService>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          SERVICE_SCRIPT,
          '--service',
          spec.service,
          '--version',
          spec.version,
          '--host',
          spec.hostId,
          '--port',
          String(spec.port ?? 0),
        ],
        { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
      );
      track(child);
      const stderrTail: string[] = [];
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        for (const line of chunk.split('\n')) if (line) options.onOutput?.(spec.service, line);
      });
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        for (const line of chunk.split('\n')) {
          if (!line) continue;
          stderrTail.push(line);
          if (stderrTail.length > 5) stderrTail.shift();
          options.onOutput?.(spec.service, line);
        }
      });
      let stopping = false;
      let started = false;
      const exited = new Promise<ServiceExit>((resolveExit) => {
        child.once('exit', (code, signal) => {
          resolveExit({ code, signal });
          if (!started) {
            clearTimeout(timer);
            reject(
              new Error(
                `${spec.service}@${spec.version} exited before listening (code ${code}, signal ${signal})${
                  stderrTail.length ? `: ${stderrTail.join(' | ')}` : ''
                }`,
              ),
            );
          } else if (!stopping) onUnexpectedExit({ code, signal });
        });
      });
      const stop = async (timeoutMs = 5_000) => {
        stopping = true;
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        try {
          await exited;
        } finally {
          clearTimeout(killer);
        }
      };
      const timer = setTimeout(() => {
        void stop(0);
        reject(new Error(`${spec.service}@${spec.version} did not report a port within the start timeout`));
      }, options.startTimeoutMs ?? 30_000);
      child.on('message', (message: unknown) => {
        const port = (message as { type?: string; port?: number } | null)?.port;
        if (started || (message as { type?: string } | null)?.type !== 'listening' || !port) return;
        started = true;
        clearTimeout(timer);
        // The channel stays open (it is how the child notices this process is gone) but must not keep it alive.
        child.channel?.unref();
        resolve({ service: spec.service, version: spec.version, port, pid: child.pid, exited, stop });
      });
      child.once('error', (error) => {
        if (started) return;
        clearTimeout(timer);
        reject(error);
      });
    });
}
