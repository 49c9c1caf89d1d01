import { SSMClient } from '@aws-sdk/client-ssm';
import { HostAgent, jsonLineLogger } from './agent.ts';
import { AppliedStateStore } from './applied-state.ts';
import type { StateApplier } from './apply/applier.ts';
import { Ec2Applier } from './apply/ec2-applier.ts';
import { LocalApplier } from './apply/local-applier.ts';
import { grantFromFile } from './cdn-upload.ts';
import { type AgentConfig, type BootConfig, ConfigError, loadBootConfig, withSecret } from './config.ts';
import { DemandFile } from './facts/demand-file.ts';
import { Ec2FactSource, ImdsClient, imdsRegion } from './facts/ec2.ts';
import { mulberry32, SimulatedHost } from './facts/simulated.ts';
import type { FactSource } from './facts/source.ts';
import { StateInbox } from './inbox.ts';
import { BroadcastLedger, BroadcastReceiver, type DependencyListener } from './notify.ts';
import { HostRuntime } from './runtime.ts';
import { createS3Client } from './s3-client.ts';
import { readSecretParameter, SecretParameterError } from './secret-parameter.ts';
import { createSqsClient } from './sqs-client.ts';

/** Process entry: `node --import tsx agent/main.ts` (or `npx tsx agent/main.ts`), configured by FLEETFOLD_* env. */

/** Local services listen on loopback, so that is the address load balancers must use to reach them. */
const LOCAL_INTERNAL_IP = '127.0.0.1';

function createFactSource(
  config: AgentConfig,
  imds: ImdsClient | undefined,
  runtime: HostRuntime,
): FactSource {
  if (imds) {
    return new Ec2FactSource({
      imds,
      group: config.group,
      ...(config.hostType ? { hostType: config.hostType } : {}),
      roles: config.roles,
      services: config.services,
      runtime,
      ...(config.capacitySessions === undefined ? {} : { capacitySessions: config.capacitySessions }),
    });
  }
  return new SimulatedHost({
    hostId: config.hostId,
    group: config.group,
    hostType: config.hostType ?? 'local',
    roles: config.roles,
    services: config.services,
    runtime,
    internalIp: LOCAL_INTERNAL_IP,
    random: mulberry32(config.seed),
    ...(config.capacitySessions === undefined ? {} : { capacitySessions: config.capacitySessions }),
    ...(config.demandFile
      ? {
          demand: new DemandFile(config.demandFile, (msg) =>
            jsonLineLogger.warn({ hostId: config.hostId, msg }),
          ),
        }
      : {}),
  });
}

function createApplier(config: AgentConfig, runtime: HostRuntime): StateApplier & DependencyListener {
  const common = { hostId: config.hostId, stateDir: config.stateDir, runtime, logger: jsonLineLogger };
  if (config.mode === 'local') {
    return new LocalApplier(common);
  }
  return new Ec2Applier({ ...common, ...(config.applyCommand ? { command: config.applyCommand } : {}) });
}

/** The secret as configured, or read from its SSM parameter (EC2); exits naming the parameter when it cannot be. */
async function resolveSecret(boot: BootConfig, region: string): Promise<AgentConfig> {
  if ('value' in boot.secret) return withSecret(boot, boot.secret.value);
  const name = boot.secret.parameter;
  // The default credential chain finds the instance role through IMDS.
  const ssm = new SSMClient({ region });
  try {
    const secret = await readSecretParameter({
      ssm,
      name,
      onRetry: (attempt, reason, delayMs) =>
        jsonLineLogger.info({
          hostId: boot.hostId,
          msg: 'secret not readable yet',
          name,
          attempt,
          reason,
          delayMs,
        }),
    });
    return withSecret(boot, secret);
  } catch (error) {
    if (error instanceof SecretParameterError) {
      process.stderr.write(`fleetfold-agent: ${error.message}\n`);
      // systemd starts the agent again (Restart=always): a tag that arrives late is picked up then.
      process.exit(2);
    }
    throw error;
  } finally {
    ssm.destroy();
  }
}

async function main(): Promise<void> {
  let boot: BootConfig;
  try {
    boot = loadBootConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`fleetfold-agent: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const imds =
    boot.mode === 'ec2' ? new ImdsClient(boot.imdsUrl ? { baseUrl: boot.imdsUrl } : {}) : undefined;
  const region = boot.s3.region ?? (imds ? await imdsRegion(imds) : undefined);
  if (!region) {
    process.stderr.write('fleetfold-agent: no region: set FLEETFOLD_REGION or AWS_REGION\n');
    process.exit(2);
  }
  const config = await resolveSecret(boot, region);
  const s3 = createS3Client(config, region);
  const runtime = new HostRuntime(config.services);
  const applier = createApplier(config, runtime);
  const appliedStates = new AppliedStateStore({ stateDir: config.stateDir, hostId: config.hostId });
  const agent = new HostAgent({
    hostId: config.hostId,
    secret: config.secret,
    bucket: config.bucket,
    s3,
    ...(config.upload
      ? { cdn: { url: config.upload.url, grant: grantFromFile(config.upload.grantFile) } }
      : {}),
    factSource: createFactSource(config, imds, runtime),
    stateDir: config.stateDir,
    heartbeatSeconds: config.heartbeatSeconds,
    pollSeconds: config.pollSeconds,
    thresholds: config.thresholds,
    logger: jsonLineLogger,
  });
  const inbox = config.inbox
    ? new StateInbox({
        hostId: config.hostId,
        sqs: createSqsClient(config, config.inbox, region),
        queue: config.inbox.queue,
        s3,
        publicKey: config.inbox.publicKeyPem,
        idleSeconds: config.inbox.idleSeconds,
        applied: appliedStates,
        apply: (state) => applier.apply(state),
        onApplied: () => void agent.pollNow(),
        broadcasts: new BroadcastReceiver({
          hostId: config.hostId,
          group: config.group,
          roles: config.roles,
          publicKey: config.inbox.publicKeyPem,
          ledger: new BroadcastLedger({ stateDir: config.stateDir, hostId: config.hostId }),
          listener: applier,
          logger: jsonLineLogger,
        }),
        logger: jsonLineLogger,
      })
    : undefined;

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": skip the flush (the exit hook still kills service processes).
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    const stopAll = async () => {
      await inbox?.stop();
      await applier.stop();
      return agent.stop();
    };
    stopAll().then(
      (flushed) => {
        jsonLineLogger.info({ hostId: config.hostId, msg: 'stopped', signal, flushed });
        process.exit(0);
      },
      (error: unknown) => {
        jsonLineLogger.warn({ hostId: config.hostId, msg: 'stop failed', error: String(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  // The last applied state is not new to the queue (a redelivery would be ignored): bring it back from disk.
  const restored = await appliedStates.load();
  if (restored) {
    try {
      await applier.apply(restored);
      jsonLineLogger.info({
        hostId: config.hostId,
        msg: 'desired state restored',
        stateVersion: restored.stateVersion,
      });
    } catch (error) {
      jsonLineLogger.warn({
        hostId: config.hostId,
        msg: 'restoring the applied state failed',
        error: String(error),
      });
    }
  }

  agent.start();
  inbox?.start();
  jsonLineLogger.info({
    hostId: config.hostId,
    msg: 'started',
    mode: config.mode,
    bucket: config.bucket,
    inbox: config.inbox
      ? 'url' in config.inbox.queue
        ? config.inbox.queue.url
        : config.inbox.queue.name
      : null,
  });
}

await main();
