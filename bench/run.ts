import { benchAutoscale } from './autoscale.ts';
import { benchBundles } from './bundles.ts';
import { benchConvergence } from './convergence.ts';
import { benchCost } from './cost.ts';
import { benchDeathToReplacement } from './death-to-replacement.ts';
import { run as benchDispatch } from './dispatch.ts';
import { benchIngestThroughput } from './ingest-throughput.ts';
import { benchMonitorTick } from './monitor-tick.ts';
import { benchPartitionSkew } from './partition-skew.ts';
import { run as benchPlanner } from './planner.ts';
import { benchRequestsPerSnapshot } from './requests-per-snapshot.ts';

// One benchmark after another: they share two cores, so running them together would measure contention.
const benches: Record<string, () => Promise<void>> = {
  'ingest-throughput': () => benchIngestThroughput(),
  'requests-per-snapshot': () => benchRequestsPerSnapshot(),
  bundles: () => benchBundles(),
  planner: () => benchPlanner(),
  dispatch: () => benchDispatch(),
  convergence: () => benchConvergence(),
  'partition-skew': () => benchPartitionSkew(),
  'monitor-tick': () => benchMonitorTick(),
  'death-to-replacement': () => benchDeathToReplacement(),
  cost: () => benchCost(),
  autoscale: () => benchAutoscale(),
};

const only = process.argv.slice(2);
const unknown = only.filter((name) => !(name in benches));
if (unknown.length > 0) {
  throw new Error(`no benchmark named ${unknown.join(', ')}; there are: ${Object.keys(benches).join(', ')}`);
}
// A broken benchmark must not hide the others' figures: it is reported, and the run still ends in failure.
for (const [name, run] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  try {
    await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`bench ${name} failed: ${message.split('\n')[0]?.slice(0, 500)}\n`);
    process.exitCode = 1;
  }
}
