import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FleetfoldStack } from './stacks/fleetfold-stack.ts';

export const STACK_NAME = 'Fleetfold';

/** Public half of a key pair whose private half was never kept: CloudFront uploads stay closed until an operator brings a key. */
const DEFAULT_UPLOAD_PUBLIC_KEY = path.join(import.meta.dirname, 'keys', 'upload-public.pem');

export interface BuildAppOptions {
  /** Context values, as `-c key=value` would give them (e.g. `uploadPublicKeyPem`). */
  readonly context?: AppProps['context'];
  /** Where the cloud assembly is written; the CLI sets it through CDK_OUTDIR. */
  readonly outdir?: string;
}

/**
 * Builds the app without synthesizing it, so tests can synth in-process and `infra/app.ts` is a one-liner.
 * The stack is environment-agnostic: account and region come from the deploying credentials.
 */
export function buildApp(options: BuildAppOptions = {}): { app: App; stack: FleetfoldStack } {
  const app = new App({
    ...(options.context ? { context: options.context } : {}),
    ...(options.outdir ? { outdir: options.outdir } : {}),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

  const contextPem: unknown = app.node.tryGetContext('uploadPublicKeyPem');
  const uploadPublicKeyPem =
    typeof contextPem === 'string' && contextPem.trim() !== ''
      ? contextPem
      : readFileSync(DEFAULT_UPLOAD_PUBLIC_KEY, 'utf8');

  const shards = contextNumber(app, 'stateTopicShards');
  const agentArtifactUrl = contextString(app, 'agentArtifactUrl');
  const subnetIds = contextList(app, 'subnetIds');
  const securityGroupIds = contextList(app, 'securityGroupIds');
  const hostImageId = contextString(app, 'hostImageId');
  const alarmEmail = contextString(app, 'alarmEmail');
  const monitorRateMinutes = contextNumber(app, 'monitorRateMinutes');
  const uploadSigningKeyParameter = contextString(app, 'uploadSigningKeyParameter');

  const stack = new FleetfoldStack(app, STACK_NAME, {
    description: 'fleetfold: event-sourced control plane for a fleet of hosts',
    uploadPublicKeyPem,
    ...(uploadSigningKeyParameter === undefined ? {} : { uploadSigningKeyParameter }),
    ...(shards === undefined ? {} : { stateTopicShards: shards }),
    ...(agentArtifactUrl === undefined ? {} : { agentArtifactUrl }),
    ...(subnetIds.length ? { hostSubnetIds: subnetIds } : {}),
    ...(securityGroupIds.length ? { hostSecurityGroupIds: securityGroupIds } : {}),
    ...(hostImageId === undefined ? {} : { hostImageId }),
    ...(alarmEmail === undefined ? {} : { alarmEmail }),
    ...(monitorRateMinutes === undefined ? {} : { monitorRateMinutes }),
  });
  return { app, stack };
}

/* `-c key=value` always gives strings; cdk.json or context passed in code may give numbers and arrays. */

function contextString(app: App, key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string')
    throw new Error(`context ${key} must be a string, got ${JSON.stringify(value)}`);
  return value.trim();
}

function contextNumber(app: App, key: string): number | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  const number = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(number) || number < 1) {
    throw new Error(`context ${key} must be a whole number of at least 1, got ${JSON.stringify(value)}`);
  }
  return number;
}

/** A JSON array, or a comma-separated string (`-c subnetIds=subnet-a,subnet-b`). */
function contextList(app: App, key: string): string[] {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return [];
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
  if (!items?.every((item) => typeof item === 'string')) {
    throw new Error(`context ${key} must be a list of strings, got ${JSON.stringify(value)}`);
  }
  return items.map((item) => item.trim()).filter((item) => item !== '');
}
