import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../infra/build-app.ts';
import { emit, round } from './output.ts';

const COLD_STARTS = 7;

/** Environment each function's config.ts insists on at import time. */
const FUNCTION_ENV = {
  EVENTS_TABLE: 'events',
  HOSTS_TABLE: 'hosts',
  SECRETS_KEY_ID: 'arn:aws:kms:us-east-1:000000000000:key/bench',
  BUCKET: 'bench',
  DOCUMENTS_TABLE: 'documents',
  RECONCILE_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:000000000000:stateMachine:bench',
  AWS_REGION: 'us-east-1',
};

/**
 * The reconcile function fetches the signing key's public half from KMS while it initialises (new hosts get it
 * in their boot script): with no AWS here its cold start cannot be timed, only its size measured.
 */
const SIZE_ONLY = new Set(['reconcile']);

/**
 * Each function's bundle exactly as `cdk synth` builds it, its size, and the time to import it in a fresh Node
 * process (module evaluation: clients and config built, no request made). The bundles leave the AWS SDK to the
 * Lambda runtime, as NodejsFunction does by default, so the import resolves it from node_modules here.
 */
export async function benchBundles(): Promise<void> {
  const outdir = mkdtempSync(join(tmpdir(), 'fleetfold-synth-'));
  // Inside the repository, so that the bundle's bare imports resolve from our node_modules.
  const runDir = join(process.cwd(), 'node_modules', '.cache', 'fleetfold-bench');
  try {
    const { app, stack } = buildApp({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
    app.synth();
    const template = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.template.json`), 'utf8'));
    for (const [logicalId, resource] of Object.entries<{ Type: string; Metadata?: Record<string, string> }>(
      template.Resources,
    )) {
      const assetPath = resource.Metadata?.['aws:asset:path'];
      if (resource.Type !== 'AWS::Lambda::Function' || !assetPath) continue;
      const name = /Ingest/i.test(logicalId)
        ? 'ingest'
        : /Api/i.test(logicalId)
          ? 'api'
          : /Reconcile/i.test(logicalId)
            ? 'reconcile'
            : logicalId;
      const assetDir = join(outdir, assetPath);
      const bundle = readdirSync(assetDir).find((file) => /^index\.m?js$/.test(file));
      if (!bundle) continue;
      const bytes = statSync(join(assetDir, bundle)).size;
      emit({ name: `bundle.${name}.size`, value: round(bytes / 1024, 1), unit: 'KiB', limit: 300 });
      if (SIZE_ONLY.has(name)) continue;

      mkdirSync(runDir, { recursive: true });
      const file = join(runDir, `${name}.mjs`);
      copyFileSync(join(assetDir, bundle), file);
      // The floor: importing just the packages the bundle leaves external (the SDK clients it uses).
      const externals = [...new Set(readFileSync(file, 'utf8').match(/@aws-sdk\/[a-z0-9-]+/g) ?? [])];
      const floorFile = join(runDir, `${name}-floor.mjs`);
      writeFileSync(floorFile, externals.map((pkg) => `import ${JSON.stringify(pkg)};`).join('\n'));
      const init = median(Array.from({ length: COLD_STARTS }, () => coldImportMs(file)));
      const floor = median(Array.from({ length: COLD_STARTS }, () => coldImportMs(floorFile)));
      emit({
        name: `bundle.${name}.cold-init`,
        value: round(init, 1),
        unit: 'ms',
        floor: round(floor, 1),
        ratio: round(init / floor, 2),
        floorIs: `importing ${externals.join(', ')}`,
        limit: 150,
      });
    }
  } finally {
    rmSync(outdir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  }
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function coldImportMs(file: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(file)}); console.log(performance.now() - t);`;
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...FUNCTION_ENV },
    encoding: 'utf8',
  });
  return Number(output.trim().split('\n').at(-1));
}
