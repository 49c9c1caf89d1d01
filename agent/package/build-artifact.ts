import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { ESM_REQUIRE_BANNER } from '../../infra/constructs/fleet-function.ts';
import { AGENT_NODE_MAJOR, AGENT_UNIT } from '../../shared/groups/user-data.ts';
import { type TarEntry, tarGz } from './tar.ts';

/**
 * The agent artifact EC2 hosts install at boot (`agentArtifactUrl`): one tar.gz holding
 *
 *     bin/fleetfold-agent            sh wrapper: runs lib/ on the Node the boot script chose (bin/node)
 *     lib/fleetfold-agent.mjs        agent/main.ts and every dependency, one minified ESM file
 *     lib/fleetfold-agent.mjs.map    its source map (file and line in stack traces; no sources inside)
 *     fleetfold-agent.service        the systemd unit
 *     install.sh                     installs the above under /opt/fleetfold/agent and (re)starts the unit
 *     manifest.json                  name, version, Node range, SHA-256 of the bundle
 *
 * and no node_modules. Built synchronously with the local esbuild, so the CDK stack can build it at synth time.
 */

export const AGENT_ARTIFACT_FILE = 'fleetfold-agent.tar.gz';
export const AGENT_BUNDLE_FILE = 'fleetfold-agent.mjs';

const PACKAGE_DIR = import.meta.dirname;
const REPOSITORY_ROOT = resolve(PACKAGE_DIR, '..', '..');

export interface AgentBundle {
  code: Buffer;
  map: Buffer;
}

export interface AgentArtifact {
  /** Absolute path of the tar.gz. */
  file: string;
  /** Size of the tar.gz. */
  bytes: number;
  /** Size of lib/fleetfold-agent.mjs alone, and of its source map. */
  bundleBytes: number;
  mapBytes: number;
  /** SHA-256 (hex) of the tar.gz. */
  sha256: string;
}

/** agent/main.ts and everything it imports, bundled for Node `AGENT_NODE_MAJOR` (no node_modules needed). */
export function bundleAgent(): AgentBundle {
  const result = buildSync({
    entryPoints: [join(REPOSITORY_ROOT, 'agent', 'main.ts')],
    outfile: join(PACKAGE_DIR, 'out', AGENT_BUNDLE_FILE),
    absWorkingDir: REPOSITORY_ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${AGENT_NODE_MAJOR}`,
    mainFields: ['module', 'main'],
    banner: { js: ESM_REQUIRE_BANNER },
    minify: true,
    sourcemap: 'linked',
    // Paths and lines are what a stack trace needs; the sources would triple the map.
    sourcesContent: false,
    legalComments: 'eof',
    logLevel: 'silent',
    write: false,
  });
  const output = (suffix: string) => {
    const file = result.outputFiles.find((candidate) => candidate.path.endsWith(suffix));
    if (!file) throw new Error(`esbuild wrote no ${suffix} for the agent`);
    return Buffer.from(file.contents);
  };
  return { code: output('.mjs'), map: output('.mjs.map') };
}

/** Everything in the tar.gz, in order; the bundle is a parameter so tests can package a stand-in agent. */
export function artifactEntries(bundle: AgentBundle): TarEntry[] {
  const file = (name: string) => readFileSync(join(PACKAGE_DIR, name));
  const version = (
    JSON.parse(readFileSync(join(REPOSITORY_ROOT, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const manifest = {
    name: 'fleetfold-agent',
    version,
    node: `>=${AGENT_NODE_MAJOR}`,
    bundleSha256: createHash('sha256').update(bundle.code).digest('hex'),
  };
  return [
    { path: 'bin/', mode: 0o755 },
    { path: 'bin/fleetfold-agent', mode: 0o755, content: file('fleetfold-agent.sh') },
    { path: 'lib/', mode: 0o755 },
    { path: `lib/${AGENT_BUNDLE_FILE}`, mode: 0o644, content: bundle.code },
    { path: `lib/${AGENT_BUNDLE_FILE}.map`, mode: 0o644, content: bundle.map },
    { path: AGENT_UNIT, mode: 0o644, content: file(AGENT_UNIT) },
    { path: 'install.sh', mode: 0o755, content: file('install.sh') },
    { path: 'manifest.json', mode: 0o644, content: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
  ];
}

/** Bundles the agent and writes `<outDir>/fleetfold-agent.tar.gz`; the same sources give the same bytes. */
export function buildAgentArtifact(outDir: string, bundle: AgentBundle = bundleAgent()): AgentArtifact {
  const archive = tarGz(artifactEntries(bundle));
  mkdirSync(outDir, { recursive: true });
  const file = resolve(outDir, AGENT_ARTIFACT_FILE);
  writeFileSync(file, archive);
  return {
    file,
    bytes: archive.length,
    bundleBytes: bundle.code.length,
    mapBytes: bundle.map.length,
    sha256: createHash('sha256').update(archive).digest('hex'),
  };
}
