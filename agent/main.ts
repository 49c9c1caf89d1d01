import { HostAgent, jsonLineLogger } from './agent.ts';
import { type AgentConfig, ConfigError, loadConfig } from './config.ts';
import { Ec2FactSource, ImdsClient, imdsRegion } from './facts/ec2.ts';
import { mulberry32, SimulatedHost } from './facts/simulated.ts';
import type { FactSource } from './facts/source.ts';
import { createS3Client } from './s3-client.ts';

/** Process entry: `node --import tsx agent/main.ts` (or `npx tsx agent/main.ts`), configured by FLEETFOLD_* env. */

function createFactSource(config: AgentConfig, imds: ImdsClient | undefined): FactSource {
  if (imds) {
    return new Ec2FactSource({
      imds,
      group: config.group,
      ...(config.hostType ? { hostType: config.hostType } : {}),
      roles: config.roles,
      services: config.services,
      ...(config.capacitySessions === undefined ? {} : { capacitySessions: config.capacitySessions }),
    });
  }
  return new SimulatedHost({
    hostId: config.hostId,
    group: config.group,
    hostType: config.hostType ?? 'local',
    roles: config.roles,
    services: config.services,
    random: mulberry32(config.seed),
    ...(config.capacitySessions === undefined ? {} : { capacitySessions: config.capacitySessions }),
  });
}

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`fleetfold-agent: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const imds =
    config.mode === 'ec2' ? new ImdsClient(config.imdsUrl ? { baseUrl: config.imdsUrl } : {}) : undefined;
  const region = config.s3.region ?? (imds ? await imdsRegion(imds) : undefined);
  if (!region) {
    process.stderr.write('fleetfold-agent: no region: set FLEETFOLD_REGION or AWS_REGION\n');
    process.exit(2);
  }
  const agent = new HostAgent({
    hostId: config.hostId,
    secret: config.secret,
    bucket: config.bucket,
    s3: createS3Client(config, region),
    factSource: createFactSource(config, imds),
    stateDir: config.stateDir,
    heartbeatSeconds: config.heartbeatSeconds,
    pollSeconds: config.pollSeconds,
    thresholds: config.thresholds,
    logger: jsonLineLogger,
  });

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": skip the flush.
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    agent.stop().then(
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

  agent.start();
  jsonLineLogger.info({ hostId: config.hostId, msg: 'started', mode: config.mode, bucket: config.bucket });
}

await main();
