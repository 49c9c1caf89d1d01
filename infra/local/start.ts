import { chmod, writeFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostView } from '../../functions/api/handler.ts';
import { type AlarmPrinter, startAlarmPrinter } from './alarm-printer.ts';
import { type LocalCloud, startLocalCloud } from './cloud.ts';
import { applyDemoGroup, DEMO_GROUP } from './demo-group.ts';
import { apiEvent } from './host-registration.ts';
import { watchLauncher } from './launcher-watch.ts';
import { resolveStateDir, statePaths } from './state-dir.ts';

/*
 * `npm start`: the whole control plane on this machine, with a demo fleet posting snapshots to it.
 * Ctrl-C (or SIGTERM) stops the agents, then the cloud, and exits 0.
 */

const SHUTDOWN_DEADLINE_MS = 20_000;
/** The demo's monitor period: a frozen host is lost after 30 s of silence and replaced within two ticks of that. */
const MONITOR_SECONDS = 5;

function readConfig(env: NodeJS.ProcessEnv) {
  const portText = env.PORT ?? '4000';
  const apiPort = Number(portText);
  if (!Number.isInteger(apiPort) || apiPort < 0 || apiPort > 65_535) {
    throw new Error(`PORT must be a port number, got "${portText}"`);
  }
  const uploads = env.FLEETFOLD_UPLOADS ?? 's3';
  if (uploads !== 's3' && uploads !== 'cdn') {
    throw new Error(`FLEETFOLD_UPLOADS must be "s3" or "cdn", got "${uploads}"`);
  }
  return { stateDir: resolveStateDir(env), apiPort, uploads: uploads as 's3' | 'cdn' };
}

function log(message: string, error?: unknown): void {
  const suffix =
    error === undefined ? '' : `: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  process.stderr.write(`fleetfold: ${message}${suffix}\n`);
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const config = readConfig(process.env);
  const paths = statePaths(config.stateDir);
  let cloud: LocalCloud | undefined;
  let alarmPrinter: AlarmPrinter | undefined;
  let shuttingDown = false;

  const shutdown = async (reason: string, exitCode: number) => {
    // tsx and the terminal may both deliver the same Ctrl-C: the first one counts.
    if (shuttingDown) return;
    shuttingDown = true;
    log(`${reason}: stopping`);
    const deadline = setTimeout(() => {
      log(`not stopped within ${SHUTDOWN_DEADLINE_MS / 1000} s, killing the agents`);
      const fleet = cloud?.controlPlane.fleet;
      for (const instance of fleet?.list() ?? []) {
        if (instance.state !== 'exited') void fleet?.kill(instance.hostId);
      }
      setTimeout(() => process.exit(1), 500).unref();
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    try {
      await alarmPrinter?.stop();
      await cloud?.stop();
      log('stopped');
    } catch (error) {
      log('stopping failed', error);
      exitCode = 1;
    }
    process.exit(exitCode);
  };
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  watchLauncher(() => void shutdown('the process that started this one is gone', 0));

  try {
    cloud = await startLocalCloud({
      stateDir: config.stateDir,
      apiPort: config.apiPort,
      ingest: true,
      withApi: true,
      agentUploads: config.uploads,
      log,
      // A lastSeen write per agent every 10 s costs nothing here, and a lost host is then seen within 45 s
      // (3 missed heartbeats of 10 s, this window, a monitor period) rather than AWS's 60 s window later.
      ingestConfig: { heartbeatCoalesceSeconds: 10 },
      controlPlane: {
        reconcilePollSeconds: 1,
        // events/groups/demo-telephony.yaml counts a host lost after 3 missed heartbeats of 10 s.
        agentHeartbeatSeconds: 10,
        agentPollSeconds: 2,
        onAgentExit: (instance, exit) => {
          if (!exit.requested && !shuttingDown) {
            log(
              `agent ${instance.hostId} (pid ${instance.pid}) died: code ${exit.code}, signal ${exit.signal}`,
            );
          }
        },
        onRunSettled: (outcome) =>
          log(
            outcome.status === 'SUCCEEDED'
              ? `reconcile ${outcome.name} succeeded`
              : `reconcile ${outcome.name} failed: ${outcome.error}: ${outcome.cause}`,
          ),
      },
    });
    const cloudReadyMs = performance.now() - startedAt;
    const { endpoints } = cloud;
    const api = endpoints.api as string;
    const published = {
      api,
      token: endpoints.token,
      s3: endpoints.s3,
      cdn: endpoints.cdn,
      sqs: endpoints.sqs,
      sns: endpoints.sns,
      dynamodb: endpoints.dynamodb,
      bucket: endpoints.bucket,
      region: endpoints.region,
    };
    // It holds the API token: owner-only, like the token file.
    await writeFile(paths.endpoints, `${JSON.stringify(published, null, 2)}\n`, { mode: 0o600 });
    await chmod(paths.endpoints, 0o600);

    const { controlPlane } = cloud;
    // Each alarm the reconcile raises, as one line on stdout: what an e-mail subscription is on AWS.
    alarmPrinter = startAlarmPrinter({ sqs: cloud.clients.sqs, queueUrl: controlPlane.alarmTopic.queueUrl });
    const resumed = await controlPlane.resumeGroup(DEMO_GROUP);
    // Resumed agents boot and start their services on new ports: plan once they are up and have said so, or
    // the load balancer would be planned from the ports of processes that are gone.
    const startedAtMs = Date.now() - (performance.now() - startedAt);
    await reportedSince(cloud, resumed, startedAtMs, () => shuttingDown);
    const demo = await applyDemoGroup(cloud.apiHandler);
    if (shuttingDown) return;
    // Every 5 s here (1 minute by default on AWS): lost hosts, dead services and the demo's rules are acted on.
    controlPlane.startMonitor(MONITOR_SECONDS, (outcome) => {
      if (outcome.kind !== 'tick') return;
      if (outcome.started > 0 || outcome.alarmsRaised > 0 || outcome.alarmsCleared > 0 || outcome.failed > 0)
        log(
          `monitor: ${outcome.due} group(s) due, ${outcome.started} reconcile(s) started, ${outcome.alarmsRaised} alarm(s) raised, ${outcome.alarmsCleared} cleared${outcome.failed ? `, ${outcome.failed} failed` : ''}`,
        );
    });
    const readyMs = performance.now() - startedAt;

    const tokenPath = relative(process.cwd(), paths.token);
    const auth = `-H "Authorization: Bearer $(cat ${tokenPath.startsWith('..') ? paths.token : tokenPath})"`;
    process.stdout.write(
      [
        '',
        `fleetfold local cloud ready in ${Math.round(cloudReadyMs)} ms; group "${DEMO_GROUP}" ${demo.definition} (definition ${demo.definitionVersion}) and started in ${Math.round(readyMs)} ms${resumed.length ? `, ${resumed.length} hosts resumed from an earlier run` : ''}`,
        `  API        ${api}`,
        `  token      ${endpoints.token}   (also in ${paths.token})`,
        `  S3         ${endpoints.s3}  bucket ${endpoints.bucket} (uploads under snapshots/ notify the ingest queue)`,
        `  CDN        ${endpoints.cdn}  (signed-policy uploads; the agents use it: ${config.uploads === 'cdn' ? 'yes' : 'no, FLEETFOLD_UPLOADS=cdn'})`,
        `  SQS/SNS    ${endpoints.sqs}`,
        `  DynamoDB   ${endpoints.dynamodb}`,
        `  state      ${config.stateDir}   (endpoints in ${paths.endpoints})`,
        '',
        'The reconcile loop now brings the demo group up in dependency order (db, media, call-router, lb). Try:',
        '  npm run fleetfold -- groups',
        `  npm run fleetfold -- hosts --group ${DEMO_GROUP}`,
        `  npm run fleetfold -- rollout ${DEMO_GROUP} call-router --version 1.5.0 && npm run fleetfold -- rollout status <id> --watch`,
        `  curl -s ${auth} "${api}/hosts?role=media&format=xml"`,
        '',
        'Ctrl-C stops everything; data stays in the state folder for the next start.',
        '',
      ].join('\n'),
    );
    void reportLoadBalancer(cloud, startedAtMs, () => shuttingDown);
  } catch (error) {
    log('start failed', error);
    await shutdown('start failed', 1);
  }
}

/** The host as GET /hosts/{id} shows it, or undefined while it is not registered. */
async function hostView(cloud: LocalCloud, hostId: string): Promise<HostView | undefined> {
  const response = await cloud.apiHandler(apiEvent('GET', `/hosts/${hostId}`));
  return response.statusCode === 200 ? (JSON.parse(response.body) as HostView) : undefined;
}

/** Waits (at most 30 s) until each host has reported itself up since `since` (ms since the epoch). */
async function reportedSince(
  cloud: LocalCloud,
  hostIds: readonly string[],
  since: number,
  stopped: () => boolean,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  const waiting = new Set(hostIds);
  while (waiting.size > 0 && !stopped() && Date.now() < deadline) {
    for (const hostId of [...waiting]) {
      const host = await hostView(cloud, hostId);
      const up = host !== undefined && host.status !== 'booting' && host.status !== 'pending';
      if (up && host.lastSeen && Date.parse(host.lastSeen) >= since) waiting.delete(hostId);
    }
    if (waiting.size > 0) await sleep(250);
  }
}

/** Prints where the demo load balancer answers once its host reports the port it listens on since `since`. */
async function reportLoadBalancer(cloud: LocalCloud, since: number, stopped: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!stopped() && Date.now() < deadline) {
    const host = await hostView(cloud, `${DEMO_GROUP}-lb-1`);
    const port = host?.state?.software.lb?.port;
    // A port reported before this start belongs to a process that is gone.
    if (port && host?.observedAt && Date.parse(host.observedAt) >= since) {
      process.stdout.write(`fleetfold: the demo load balancer answers at http://127.0.0.1:${port}/\n`);
      return;
    }
    await sleep(1000);
  }
}

await main();
