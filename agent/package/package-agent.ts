import { relative } from 'node:path';
import { buildAgentArtifact } from './build-artifact.ts';

/** `npm run package:agent [-- OUT_DIR]`: writes dist/fleetfold-agent.tar.gz (or OUT_DIR/…) and prints its size. */
const outDir = process.argv[2] ?? 'dist';
const artifact = buildAgentArtifact(outDir);
const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
console.log(
  `${relative(process.cwd(), artifact.file)}: ${kib(artifact.bytes)} ` +
    `(bundle ${kib(artifact.bundleBytes)}, source map ${kib(artifact.mapBytes)}), sha256 ${artifact.sha256}`,
);
