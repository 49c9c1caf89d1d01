import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { Ec2InstanceOwners } from '../../shared/adapters/ec2-fleet.ts';
import { SfnReconcileStarter } from '../../shared/adapters/sfn-reconcile-starter.ts';
import { observed, powertools } from '../observability.ts';
import { buildMonitorDeps } from '../wiring.ts';
import { loadMonitorConfig } from './config.ts';
import { createMonitorHandler } from './handler.ts';

// Built once per cold start; every tick reuses the clients.
const config = loadMonitorConfig(process.env);
const observability = powertools();

const deps = buildMonitorDeps({
  dynamodb: new DynamoDBClient({}),
  eventsTable: config.eventsTable,
  hostsTable: config.hostsTable,
  documentsTable: config.documentsTable,
  reconcile: new SfnReconcileStarter({
    client: new SFNClient({}),
    stateMachineArn: config.reconcileStateMachineArn,
  }),
  tickSeconds: config.tickSeconds,
  heartbeatCoalesceSeconds: config.heartbeatCoalesceSeconds,
  instances: new Ec2InstanceOwners({ client: new EC2Client({}), stack: config.stackTag }),
  ...(config.alarmTopicArn ? { alarmTopic: { sns: new SNSClient({}), topicArn: config.alarmTopicArn } } : {}),
  telemetry: observability.telemetry,
});

export const handler = observed(
  createMonitorHandler({
    ...deps,
    log: ({ msg, ...fields }) => observability.log('info', String(msg), fields),
  }),
  observability,
);
