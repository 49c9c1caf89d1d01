import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import type { CapacityListener } from './dynamo-common.ts';

const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem']);

export interface CapacityTotals {
  readUnits: number;
  writeUnits: number;
  /** Calls per operation, including failed conditional writes, which AWS bills but does not report. */
  calls: Record<string, number>;
  /** Calls whose response carried no ConsumedCapacity (failed conditional writes, or an emulator that omits it). */
  unreported: number;
}

export interface CapacityMeter {
  onCapacity: CapacityListener;
  totals(): CapacityTotals;
  reset(): void;
}

/** Sums what the adapters report through `onCapacity`, split into read and write units. */
export function capacityMeter(): CapacityMeter {
  let totals = empty();
  const onCapacity = (operation: string, consumed: ConsumedCapacity | undefined) => {
    totals.calls[operation] = (totals.calls[operation] ?? 0) + 1;
    const units = consumed?.CapacityUnits;
    if (units === undefined) {
      totals.unreported += 1;
      return;
    }
    if (WRITES.has(operation)) totals.writeUnits += units;
    else totals.readUnits += units;
  };
  return {
    onCapacity,
    totals: () => ({ ...totals, calls: { ...totals.calls } }),
    reset: () => {
      totals = empty();
    },
  };
}

function empty(): CapacityTotals {
  return { readUnits: 0, writeUnits: 0, calls: {}, unreported: 0 };
}
