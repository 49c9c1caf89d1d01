import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createMonitorHandler, type MonitorOutcome } from '../../functions/monitor/handler.ts';
import type { ReconcileDeps } from '../../functions/reconcile/handler.ts';
import { buildMonitorDeps, buildReconcileDeps } from '../../functions/wiring.ts';
import { LocalStateSigner } from '../../shared/adapters/local-state-signer.ts';
import { SnsStatePublisher } from '../../shared/adapters/sns-state-publisher.ts';
import type { UploadGrantIssuer } from '../../shared/cdn-policy.ts';
import { statusOf } from '../../shared/fold.ts';
import { inboxQueueName } from '../../shared/groups/fanout.ts';
import type { HostIdentity, HostProvisioner } from '../../shared/groups/host-provisioning.ts';
import { bindingInboxes } from '../../shared/groups/inbox-binding.ts';
import type { ReconcileStarter } from '../../shared/groups/ports.ts';
import type { HostStore } from '../../shared/ports.ts';
import { hostDemandFile } from '../../shared/simulated-demand.ts';
import type { Telemetry } from '../../shared/telemetry.ts';
import { ensureAlarmTopic } from './alarm-printer.ts';
import type { ApiHandler } from './api-server.ts';
import { cdnUploadEnv } from './cdn-stand-in.ts';
import { reconcileOnCrash } from './crash-trigger.ts';
import { drainingFromStore, startDemandSimulator } from './demand-simulator.ts';
import { LOCAL_ACCOUNT_ID } from './emulators.ts';
import { ensureRegistered, revokeRegistration } from './host-registration.ts';
import { ensureStateTopics } from './inboxes.ts';
import { type InstanceExit, LocalFleet, type LocalInstance } from './local-fleet.ts';
import { LocalFleetPort } from './local-fleet-port.ts';
import type { LocalOutcome, LocalReconcileStarter } from './local-reconcile-starter.ts';
import { type MonitorTimer, startMonitorTimer } from './monitor-timer.ts';
import { type SqsGuard, startSqsGuard } from './sqs-guard.ts';
import { statePaths } from './state-dir.ts';

/*
 * Local mode's desired-state half: the state topics and signing key, the fleet of agent processes standing in
 * for EC2, and the reconcile state machine (the ASL CDK synthesizes) run in-process against the real handler.
 */

export interface LocalControlPlaneOptions {
  stateDir: string;
  region: string;
  /** fauxqs: inbox queue URLs point here. */
  awsEndpoint: string;
  /** Where agents PUT snapshots (the notification bridge). */
  s3Endpoint: string;
  bucket: string;
  clients: { s3Direct: S3Client; sqs: SQSClient; sns: SNSClient; dynamodb: DynamoDBClient };
  tables: { events: string; hosts: string; documents: string };
  /** The api handler registers launched hosts; it is built after this, hence a getter. */
  api: () => ApiHandler;
  /** Where the reconcile and the monitor count what they did (the local cloud's MetricCounter). */
  telemetry?: Telemetry;
  /** Agents post through the CDN stand-in with a grant issued at each launch; absent: straight to S3. */
  cdnUploads?: { url: string; grants: UploadGrantIssuer };
  /** Seconds between two convergence checks of a wave; default 1 (AWS: 15). */
  reconcilePollSeconds?: number;
  /** The local ingest's heartbeat coalescing window, which the monitor and the reconcile allow for. */
  heartbeatCoalesceSeconds: number;
  agentHeartbeatSeconds?: number;
  agentPollSeconds?: number;
  onAgentOutput?: (hostId: string, line: string, stream: 'stdout' | 'stderr') => void;
  onAgentExit?: (instance: LocalInstance, exit: InstanceExit) => void;
  /** An agent died unasked and its group's reconcile could not be started; default: a line on stderr. */
  onCrashReconcileError?: (instance: LocalInstance, error: unknown) => void;
  /** Told how each reconcile run ended. */
  onRunSettled?: (outcome: LocalOutcome) => void;
}

export interface LocalControlPlane {
  reconcile: ReconcileStarter;
  fleet: LocalFleet;
  fleetPort: LocalFleetPort;
  publisher: SnsStatePublisher;
  /** The alarm topic the reconcile publishes to, and the queue on it the alarm printer reads. */
  alarmTopic: { topicArn: string; queueUrl: string };
  signer: LocalStateSigner;
  /** The SQS endpoint agents use: checks each instance's own credentials as the host role's IAM would. */
  sqsGuard: SqsGuard;
  /**
   * Starts again the agents of a group's hosts that were assigned a running state: EC2 instances outlive a
   * restart of the control plane, local processes do not, so a restart brings them back as they were.
   */
  resumeGroup(group: string): Promise<string[]>;
  /** Waits for the reconcile runs started so far. */
  settled(): Promise<LocalOutcome[]>;
  /**
   * Runs the monitor every `seconds` (EventBridge Scheduler's part on AWS). Started by the caller once the
   * fleet it resumed has reported: a host silent only because local mode was down must not be judged lost.
   */
  startMonitor(seconds: number, onTick?: (outcome: MonitorOutcome) => void): void;
  /** One monitor tick now (tests drive the monitor tick by tick). */
  monitorTick(tickSeconds?: number): Promise<MonitorOutcome>;
  stop(): Promise<void>;
}

export async function startLocalControlPlane(options: LocalControlPlaneOptions): Promise<LocalControlPlane> {
  const paths = statePaths(options.stateDir);
  const { s3Direct, sqs, sns, dynamodb } = options.clients;
  // Local instances' ARNs, as the guard derives a caller's ec2:SourceInstanceARN and bindInbox tags inboxes.
  const instanceArnPrefix = `arn:aws:ec2:${options.region}:${LOCAL_ACCOUNT_ID}:instance/`;
  const [signer, topicArns, alarmTopic, sqsGuard] = await Promise.all([
    LocalStateSigner.fromKeyFile(paths.stateSigningKey),
    ensureStateTopics(sns),
    ensureAlarmTopic(sns, sqs),
    startSqsGuard({
      upstream: options.awsEndpoint,
      sqs,
      region: options.region,
      accountId: LOCAL_ACCOUNT_ID,
      instanceArnPrefix,
    }),
  ]);
  const publisher = new SnsStatePublisher({
    sns,
    sqs,
    s3: s3Direct,
    bucket: options.bucket,
    signer,
    topicArns,
    instanceArnPrefix,
  });
  const secretFile = (hostId: string) => join(paths.hostSecrets, `${hostId}.secret`);

  let stopping = false;
  let starter: ReconcileStarter | undefined;
  const onCrash = reconcileOnCrash({
    reconcile: () => {
      if (!starter) throw new Error('an agent exited before the reconcile starter was built');
      return starter;
    },
    launchCount: (hostId) => fleet.launchCount(hostId),
    stopping: () => stopping,
    onError: (error, instance) => {
      if (options.onCrashReconcileError) options.onCrashReconcileError(instance, error);
      else
        process.stderr.write(`[${instance.hostId}] could not reconcile after its exit: ${String(error)}\n`);
    },
  });
  const fleet = new LocalFleet({
    bucket: options.bucket,
    s3Endpoint: options.s3Endpoint,
    region: options.region,
    agentsDir: paths.agents,
    heartbeatSeconds: options.agentHeartbeatSeconds ?? 60,
    pollSeconds: options.agentPollSeconds ?? 2,
    ...(options.onAgentOutput ? { onOutput: options.onAgentOutput } : {}),
    credentials: (instanceId) => sqsGuard.credentialsFor(instanceId),
    onExit: (instance, exit) => {
      options.onAgentExit?.(instance, exit);
      void onCrash(instance, exit);
    },
  });
  // Registration through the api handler, the secret in a file beside the agents: what SSM is on EC2.
  const registerLocally = async (host: HostIdentity) => {
    const file = secretFile(host.hostId);
    await ensureRegistered(options.api(), host, file);
    return file;
  };
  const provisionerFor = (stores: Pick<ReconcileDeps, 'events' | 'hosts'>): HostProvisioner =>
    bindingInboxes(
      {
        prepare: registerLocally,
        // A local process is the only reader of its own file: there is no instance to grant it to.
        bind: async () => {},
        revoke: (hostId) =>
          revokeRegistration({ ...stores, now: () => new Date() }, hostId, secretFile(hostId)),
      },
      publisher,
    );
  const fleetPort = new LocalFleetPort({
    fleet,
    // Also reached without the reconcile (resumeGroup); a host the provisioner registered is reused.
    register: async (request) => ({ secretFile: await registerLocally(request) }),
    agentEnv: async (hostId) => ({
      FLEETFOLD_INBOX_QUEUE_URL: `${sqsGuard.endpoint}/${LOCAL_ACCOUNT_ID}/${inboxQueueName(hostId)}`,
      FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: `${paths.stateSigningKey}.pub`,
      FLEETFOLD_DEMAND_FILE: hostDemandFile(options.stateDir, hostId),
      ...(options.cdnUploads ? await cdnUploadEnv(options.cdnUploads, hostId, paths.hostSecrets) : {}),
    }),
  });

  // The same wiring as the deployed function's index.ts, with the local fleet and registration.
  const deps: ReconcileDeps = buildReconcileDeps({
    dynamodb,
    s3: s3Direct,
    bucket: options.bucket,
    eventsTable: options.tables.events,
    hostsTable: options.tables.hosts,
    documentsTable: options.tables.documents,
    fleet: fleetPort,
    provisioner: provisionerFor,
    publisher,
    alarmTopic: { sns, topicArn: alarmTopic.topicArn },
    ...(options.telemetry ? { telemetry: options.telemetry } : {}),
    settings: {
      pollSeconds: options.reconcilePollSeconds ?? 1,
      checkWindowMs: 2_000,
      // The local store answers in a millisecond: looking often costs nothing and shortens every wave.
      checkIntervalMs: 50,
      heartbeatCoalesceSeconds: options.heartbeatCoalesceSeconds,
    },
  });
  const { hosts } = deps;
  // `fleetfold simulate`: a host type's demand, spread over its serving agents.
  const demand = startDemandSimulator({
    stateDir: options.stateDir,
    instances: () => fleet.list(),
    draining: drainingFromStore(hosts),
  });
  const reconcile = new LazyLocalReconcileStarter(async () => {
    // aws-cdk-lib takes seconds to load: only a run that is actually started pays for synthesizing the ASL.
    const [{ reconcileAsl }, { LocalStateMachine }, { LocalReconcileStarter }, { createReconcileHandler }] =
      await Promise.all([
        import('./reconcile-asl.ts'),
        import('./step-functions.ts'),
        import('./local-reconcile-starter.ts'),
        import('../../functions/reconcile/handler.ts'),
      ]);
    const handler = createReconcileHandler(deps);
    return new LocalReconcileStarter({
      machine: new LocalStateMachine(reconcileAsl(), (payload) => handler(payload as never)),
      ...(options.onRunSettled ? { onSettled: options.onRunSettled } : {}),
    });
  });

  starter = reconcile;

  // The same monitor handler the schedule invokes on AWS, on a timer.
  let monitor: MonitorTimer | undefined;
  const monitorTick = (tickSeconds: number) =>
    createMonitorHandler({
      ...buildMonitorDeps({
        dynamodb,
        eventsTable: options.tables.events,
        hostsTable: options.tables.hosts,
        documentsTable: options.tables.documents,
        reconcile,
        tickSeconds,
        heartbeatCoalesceSeconds: options.heartbeatCoalesceSeconds,
        alarmTopic: { sns, topicArn: alarmTopic.topicArn },
        ...(options.telemetry ? { telemetry: options.telemetry } : {}),
      }),
      // What a tick did reaches the caller (onTick); a JSON line every few seconds would drown the demo's output.
      log: () => {},
    });

  return {
    reconcile,
    fleet,
    fleetPort,
    publisher,
    alarmTopic,
    signer,
    sqsGuard,
    resumeGroup: (group) => resumeGroup(group, { hosts, fleetPort, publisher }),
    settled: () => reconcile.settled(),
    startMonitor: (seconds, onTick) => {
      if (monitor) throw new Error('the monitor runs already');
      const tick = monitorTick(seconds);
      monitor = startMonitorTimer({
        seconds,
        tick: async () => {
          const outcome = await tick({
            source: 'fleetfold.local-scheduler',
            scheduledTime: new Date().toISOString(),
          });
          onTick?.(outcome);
        },
      });
    },
    monitorTick: (tickSeconds = 5) => monitorTick(tickSeconds)({}),
    stop: async () => {
      stopping = true;
      await monitor?.stop();
      await demand.stop();
      reconcile.stop();
      await fleet.stopAll();
      await sqsGuard.stop();
    },
  };
}

async function resumeGroup(
  group: string,
  parts: { hosts: HostStore; fleetPort: LocalFleetPort; publisher: SnsStatePublisher },
): Promise<string[]> {
  const resumed: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await parts.hosts.list({ group }, 100, cursor);
    for (const host of page.hosts) {
      // A host whose instance died was replaced (or stopped): starting it again would add a host.
      if (host.terminated && statusOf(host) === host.terminated.status) continue;
      const desired = host.assigned?.state;
      if (!desired || desired.mode === 'stopped') continue;
      const instance = await parts.fleetPort.launch({
        hostId: host.hostId,
        group: host.group,
        hostType: host.hostType,
        roles: host.roles,
        instanceType: 'local',
        stateVersion: desired.stateVersion,
        secretRef: '',
      });
      // A new process is a new instance: its inbox is handed to it, as the reconcile's bind does.
      await parts.publisher.bindInbox(host.hostId, instance);
      resumed.push(host.hostId);
    }
    cursor = page.next;
  } while (cursor);
  return resumed;
}

/** Builds the local state machine on the first start, so tests that never reconcile never load the CDK. */
class LazyLocalReconcileStarter implements ReconcileStarter {
  #starter: Promise<LocalReconcileStarter> | undefined;
  #built: LocalReconcileStarter | undefined;

  constructor(private readonly build: () => Promise<LocalReconcileStarter>) {}

  async start(request: Parameters<ReconcileStarter['start']>[0]) {
    this.#starter ??= this.build().then((starter) => {
      this.#built = starter;
      return starter;
    });
    return (await this.#starter).start(request);
  }

  async settled(): Promise<LocalOutcome[]> {
    return this.#starter ? (await this.#starter).settled() : [];
  }

  stop(): void {
    this.#built?.stop();
  }
}
