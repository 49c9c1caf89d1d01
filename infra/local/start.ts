import { chmod, writeFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { type LocalCloud, startLocalCloud } from './cloud.ts';
import { demoHostSpecs, ensureRegistered } from './demo-fleet.ts';
import { watchLauncher } from './launcher-watch.ts';
import { LocalFleet } from './local-fleet.ts';
import { resolveStateDir, statePaths } from './state-dir.ts';

/*
 * `npm start`: the whole control plane on this machine, with a demo fleet posting snapshots to it.
 * Ctrl-C (or SIGTERM) stops the agents, then the cloud, and exits 0.
 */

const SHUTDOWN_DEADLINE_MS = 20_000;

function readConfig(env: NodeJS.ProcessEnv) {
  const portText = env.PORT ?? '4000';
  const apiPort = Number(portText);
  if (!Number.isInteger(apiPort) || apiPort < 0 || apiPort > 65_535) {
    throw new Error(`PORT must be a port number, got "${portText}"`);
  }
  return { stateDir: resolveStateDir(env), apiPort };
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
  let fleet: LocalFleet | undefined;
  let shuttingDown = false;

  const shutdown = async (reason: string, exitCode: number) => {
    // tsx and the terminal may both deliver the same Ctrl-C: the first one counts.
    if (shuttingDown) return;
    shuttingDown = true;
    log(`${reason}: stopping`);
    const deadline = setTimeout(() => {
      log(`not stopped within ${SHUTDOWN_DEADLINE_MS / 1000} s, killing the agents`);
      for (const instance of fleet?.list() ?? []) {
        if (instance.state !== 'exited') fleet?.kill(instance.hostId);
      }
      setTimeout(() => process.exit(1), 500).unref();
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    try {
      await fleet?.stopAll();
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
      log,
    });
    const cloudReadyMs = performance.now() - startedAt;
    const { endpoints } = cloud;
    const api = endpoints.api as string;
    const published = {
      api,
      token: endpoints.token,
      s3: endpoints.s3,
      sqs: endpoints.sqs,
      sns: endpoints.sns,
      dynamodb: endpoints.dynamodb,
      bucket: endpoints.bucket,
      region: endpoints.region,
    };
    // It holds the API token: owner-only, like the token file.
    await writeFile(paths.endpoints, `${JSON.stringify(published, null, 2)}\n`, { mode: 0o600 });
    await chmod(paths.endpoints, 0o600);

    const runningFleet = new LocalFleet({
      bucket: endpoints.bucket,
      s3Endpoint: endpoints.s3,
      region: endpoints.region,
      agentsDir: paths.agents,
      heartbeatSeconds: 60,
      pollSeconds: 2,
      onExit: (instance, exit) => {
        if (!exit.requested && !shuttingDown) {
          log(
            `agent ${instance.hostId} (pid ${instance.pid}) died: code ${exit.code}, signal ${exit.signal}; not restarted`,
          );
        }
      },
    });
    fleet = runningFleet;
    const specs = demoHostSpecs(paths.hostSecrets);
    const registrations = await Promise.all(
      specs.map(async (spec) => ({
        spec,
        outcome: await ensureRegistered({ url: api, token: endpoints.token }, spec),
      })),
    );
    if (shuttingDown) return;
    for (const { spec } of registrations) runningFleet.launch(spec);
    const readyMs = performance.now() - startedAt;

    const reused = registrations.filter((r) => r.outcome === 'reused').length;
    const tokenPath = relative(process.cwd(), paths.token);
    const auth = `-H "Authorization: Bearer $(cat ${tokenPath.startsWith('..') ? paths.token : tokenPath})"`;
    process.stdout.write(
      [
        '',
        `fleetfold local cloud ready in ${Math.round(cloudReadyMs)} ms; demo fleet of ${specs.length} hosts launched in ${Math.round(readyMs)} ms (${reused} re-used from an earlier run)`,
        `  API        ${api}`,
        `  token      ${endpoints.token}   (also in ${paths.token})`,
        `  S3         ${endpoints.s3}  bucket ${endpoints.bucket} (uploads under snapshots/ notify the ingest queue)`,
        `  SQS/SNS    ${endpoints.sqs}`,
        `  DynamoDB   ${endpoints.dynamodb}`,
        `  state      ${config.stateDir}   (endpoints in ${paths.endpoints})`,
        '',
        'try:',
        `  curl -s ${auth} ${api}/hosts`,
        `  curl -s ${auth} "${api}/hosts?role=media&format=xml"`,
        `  curl -s ${auth} ${api}/hosts/${specs[0]?.hostId}/history`,
        '',
        'Ctrl-C stops everything; data stays in the state folder for the next start.',
        '',
      ].join('\n'),
    );
  } catch (error) {
    log('start failed', error);
    await shutdown('start failed', 1);
  }
}

await main();
