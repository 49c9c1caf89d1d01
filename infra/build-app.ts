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

  const stack = new FleetfoldStack(app, STACK_NAME, {
    description: 'fleetfold: event-sourced control plane for a fleet of hosts',
    uploadPublicKeyPem,
  });
  return { app, stack };
}
