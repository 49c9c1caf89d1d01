/**
 * What the functions report about themselves, as a port: the handlers and adapters count through `Telemetry`
 * and log through `StructuredLog`; the Lambda entry points bind them to Powertools (functions/observability.ts),
 * local mode and tests to `MetricCounter` and a JSON console line. Nothing here knows CloudWatch.
 *
 * Every metric is published with one fixed dimension set (the service), plus at most one small, closed
 * dimension (a refusal reason, a monitor action kind): CloudWatch bills each name × dimension-values
 * combination as a metric, so an open dimension (a group, a host, an alarm's text) would make the bill grow
 * with the fleet. Those go into log lines instead.
 */
import type { FleetEvent, NewEvent } from './events.ts';
import type { EventStore, RejectReason } from './ports.ts';

/** The CloudWatch namespace and the service dimension every function publishes under (POWERTOOLS_* env). */
export const METRICS_NAMESPACE = 'fleetfold';
export const SERVICE_NAME = 'fleetfold';

/** Why a snapshot was refused: the closed list the `reason` dimension takes (alarms and the dashboard sum it). */
export const REFUSAL_REASONS = [
  'bad-key',
  'oversized',
  'malformed',
  'unknown-host',
  'foreign',
  'bad-signature',
  'clock-skew',
  'replayed',
] as const satisfies readonly RejectReason[];

/** What the monitor did, the closed list of the `kind` dimension of MonitorActions. */
export const MONITOR_ACTION_KINDS = [
  'reconcile-started',
  'reconcile-coalesced',
  'alarm-raised',
  'alarm-cleared',
  'instance-reconciled',
  'scaling-decided',
] as const;
export type MonitorActionKind = (typeof MONITOR_ACTION_KINDS)[number];

/** Metric names, one place: the functions publish them, the CDK alarms and dashboard read them. */
export const METRICS = {
  snapshotsIngested: 'SnapshotsIngested',
  snapshotsRefused: 'SnapshotsRefused',
  eventsAppended: 'EventsAppended',
  rolloutsStarted: 'RolloutsStarted',
  rolloutsSucceeded: 'RolloutsSucceeded',
  rolloutsFailed: 'RolloutsFailed',
  rolloutsRolledBack: 'RolloutsRolledBack',
  wavesSettled: 'WavesSettled',
  alarmsRaised: 'AlarmsRaised',
  monitorActions: 'MonitorActions',
  waveDuration: 'WaveDuration',
} as const;

export type CountMetric = Exclude<(typeof METRICS)[keyof typeof METRICS], 'WaveDuration'>;
export type DurationMetric = typeof METRICS.waveDuration;

/** The one optional dimension a datapoint carries; both take their values from the closed lists above. */
export type MetricDimension = { reason: RejectReason } | { kind: MonitorActionKind };

export interface Telemetry {
  count(metric: CountMetric, value: number, dimension?: MetricDimension): void;
  milliseconds(metric: DurationMetric, value: number): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** One structured log line: a message and the fields that say which record, host or group it is about. */
export type StructuredLog = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/**
 * The default where nothing is bound (local mode, benchmarks, tests): one JSON line per call on the console,
 * debug left out (the ingest logs every record at debug; on Lambda the log level filters it).
 */
export const jsonConsoleLog: StructuredLog = (level, message, fields = {}) => {
  if (level !== 'debug') console[level](JSON.stringify({ level, msg: message, ...fields }));
};

/** Counts recorded in memory: local mode's and the tests' binding of the port (real counting, no CloudWatch). */
export class MetricCounter implements Telemetry {
  readonly #counts = new Map<string, number>();
  readonly #durations = new Map<string, number[]>();

  count(metric: CountMetric, value: number, dimension?: MetricDimension): void {
    const key = keyOf(metric, dimension);
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + value);
  }

  milliseconds(metric: DurationMetric, value: number): void {
    this.#durations.set(metric, [...(this.#durations.get(metric) ?? []), value]);
  }

  /** The total under a name (all dimension values) or under one dimension value. */
  total(metric: CountMetric, dimension?: MetricDimension): number {
    if (dimension) return this.#counts.get(keyOf(metric, dimension)) ?? 0;
    let sum = 0;
    for (const [key, value] of this.#counts) if (key === metric || key.startsWith(`${metric}|`)) sum += value;
    return sum;
  }

  durations(metric: DurationMetric): readonly number[] {
    return this.#durations.get(metric) ?? [];
  }

  /** `name` or `name|dimension=value` → total, for a readable summary. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }
}

function keyOf(metric: string, dimension?: MetricDimension): string {
  if (!dimension) return metric;
  const [[name, value]] = Object.entries(dimension) as [[string, string]];
  return `${metric}|${name}=${value}`;
}

/**
 * The metrics an appended batch of events stands for. Counting at the event store means every function that
 * records a rollout's end or an alarm reports it, whichever step or route did it, and only once per event:
 * a lost race appends nothing, so it counts nothing.
 */
export function eventMetrics(events: readonly { type: string; data?: unknown }[]): Map<CountMetric, number> {
  const counts = new Map<CountMetric, number>();
  const add = (metric: CountMetric) => counts.set(metric, (counts.get(metric) ?? 0) + 1);
  for (const event of events) {
    add(METRICS.eventsAppended);
    const metric = EVENT_METRICS[event.type];
    if (metric) add(metric);
    if (event.type === 'RolloutRevertFinished' && outcomeOf(event.data) === 'rolled-back')
      add(METRICS.rolloutsRolledBack);
  }
  return counts;
}

const EVENT_METRICS: Partial<Record<string, CountMetric>> = {
  RolloutCreated: METRICS.rolloutsStarted,
  RolloutSucceeded: METRICS.rolloutsSucceeded,
  RolloutFailed: METRICS.rolloutsFailed,
  RolloutWaveSettled: METRICS.wavesSettled,
  AlarmRaised: METRICS.alarmsRaised,
};

function outcomeOf(data: unknown): unknown {
  return typeof data === 'object' && data !== null ? (data as { outcome?: unknown }).outcome : undefined;
}

/** The event store, counting what it appended (after the conditional put succeeded, never before). */
export function countingEventStore(store: EventStore, telemetry: Telemetry): EventStore {
  return {
    async append<E extends FleetEvent>(
      stream: string,
      expectedVersion: number,
      events: readonly NewEvent<E>[],
      recordedAt: Date,
    ) {
      const version = await store.append(stream, expectedVersion, events, recordedAt);
      for (const [metric, value] of eventMetrics(events)) telemetry.count(metric, value);
      return version;
    },
    read: (stream, options) => store.read(stream, options),
    currentVersion: (stream) => store.currentVersion(stream),
  };
}
