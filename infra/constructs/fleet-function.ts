import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The Node LTS the functions run on; the bundle targets the same version. */
export const FUNCTION_RUNTIME = lambda.Runtime.NODEJS_24_X;
const ESBUILD_TARGET = 'node24';

/**
 * ESM bundles have no `require`; a few CommonJS dependencies bundled into them still call it for Node
 * built-ins, so the bundle recreates it.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);";

export interface FleetFunctionProps {
  /** Path of the handler module, relative to the repository root (e.g. `functions/ingest/index.ts`). */
  readonly entry: string;
  /** What the function is for, shown in the console. */
  readonly description: string;
  /**
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * @default Duration.seconds(10)
   */
  readonly timeout?: Duration;
  /**
   * Settings that need no grant. Anything naming a resource goes through the `bind*` helpers instead.
   * @default - only NODE_OPTIONS
   */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A handler module bundled by the local esbuild (no Docker) into a minified ESM file with source maps,
 * running on arm64 with its own log group and a role that may write only to that log group until
 * `bind*` helpers add grants.
 */
export class FleetFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: FleetFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    // An own role instead of AWSLambdaBasicExecutionRole, which may write to every log group in the account.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: path.resolve(repositoryRoot(), props.entry),
      handler: 'handler',
      description: props.description,
      runtime: FUNCTION_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(10),
      role: this.role,
      logGroup: this.logGroup,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      projectRoot: repositoryRoot(),
      depsLockFilePath: path.join(repositoryRoot(), 'package-lock.json'),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: ESBUILD_TARGET,
        mainFields: ['module', 'main'],
        banner: ESM_REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        forceDockerBundling: false,
      },
    });
  }
}

function repositoryRoot(): string {
  return path.resolve(import.meta.dirname, '..', '..');
}
