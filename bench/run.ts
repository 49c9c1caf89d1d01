import { benchBundles } from './bundles.ts';
import { benchIngestThroughput } from './ingest-throughput.ts';
import { benchRequestsPerSnapshot } from './requests-per-snapshot.ts';

// One benchmark after another: they share two cores, so running them together would measure contention.
const benches: Record<string, () => Promise<void>> = {
  'ingest-throughput': () => benchIngestThroughput(),
  'requests-per-snapshot': () => benchRequestsPerSnapshot(),
  bundles: () => benchBundles(),
};

const only = process.argv.slice(2);
for (const [name, run] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  await run();
}
