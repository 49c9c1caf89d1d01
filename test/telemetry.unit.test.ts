import { Metrics } from '@aws-lambda-powertools/metrics';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { reportIngestBatch } from '../functions/ingest/batch-metrics.ts';
import { monitorActions, type TickSummary } from '../functions/monitor/handler.ts';
import { powertoolsTelemetry } from '../functions/observability.ts';
import { waveDurationMs } from '../functions/reconcile/handler.ts';
import { ConflictError } from '../shared/errors.ts';
import {
  countingEventStore,
  eventMetrics,
  METRICS,
  MetricCounter,
  REFUSAL_REASONS,
} from '../shared/telemetry.ts';
import { MemoryEventStore } from './support/memory-stores.ts';

const AT = new Date('2031-02-03T04:05:06.000Z');

const eventTypes = [
  'StateObserved',
  'RolloutCreated',
  'RolloutSucceeded',
  'RolloutFailed',
  'RolloutWaveSettled',
  'AlarmRaised',
  'RolloutRevertFinished',
] as const;

describe('metrics of appended events', () => {
  it('counts every event once as appended, and each rollout end, wave and alarm under its own name', () => {
    const anEvent = fc.record({
      type: fc.constantFrom(...eventTypes),
      data: fc.record({ outcome: fc.constantFrom('aborted', 'rolled-back') }),
    });
    fc.assert(
      fc.property(fc.array(anEvent, { maxLength: 30 }), (events) => {
        const counts = eventMetrics(events);
        const of = (type: string) => events.filter((event) => event.type === type).length;
        expect(counts.get(METRICS.eventsAppended) ?? 0).toBe(events.length);
        expect(counts.get(METRICS.rolloutsStarted) ?? 0).toBe(of('RolloutCreated'));
        expect(counts.get(METRICS.rolloutsSucceeded) ?? 0).toBe(of('RolloutSucceeded'));
        expect(counts.get(METRICS.rolloutsFailed) ?? 0).toBe(of('RolloutFailed'));
        expect(counts.get(METRICS.wavesSettled) ?? 0).toBe(of('RolloutWaveSettled'));
        expect(counts.get(METRICS.alarmsRaised) ?? 0).toBe(of('AlarmRaised'));
        // An aborted rollout's revert is not a rollback.
        const rolledBack = events.filter(
          (event) => event.type === 'RolloutRevertFinished' && event.data.outcome === 'rolled-back',
        ).length;
        expect(counts.get(METRICS.rolloutsRolledBack) ?? 0).toBe(rolledBack);
      }),
    );
  });

  it('counts what the store appended, and nothing for an append that lost its race', async () => {
    const counter = new MetricCounter();
    const events = countingEventStore(new MemoryEventStore(), counter);
    const alarm = { type: 'AlarmRaised', eventId: 'a-1', data: {} } as never;
    await events.append('group#demo', 0, [alarm, { ...(alarm as object), eventId: 'a-2' } as never], AT);
    await expect(events.append('group#demo', 0, [alarm], AT)).rejects.toBeInstanceOf(ConflictError);
    expect(counter.total(METRICS.eventsAppended)).toBe(2);
    expect(counter.total(METRICS.alarmsRaised)).toBe(2);
    expect(await events.currentVersion('group#demo')).toBe(2);
  });
});

describe('ingest batch metrics', () => {
  it('counts changes, heartbeats and coalesced snapshots as ingested and refusals by reason; not redeliveries', () => {
    const counter = new MetricCounter();
    reportIngestBatch(counter)({
      records: 9,
      failed: 0,
      outcomes: {
        changed: 2,
        heartbeat: 3,
        coalesced: 1,
        duplicate: 4,
        gone: 1,
        'rejected:bad-signature': 2,
        'rejected:clock-skew': 1,
      },
    });
    expect(counter.total(METRICS.snapshotsIngested)).toBe(6);
    expect(counter.total(METRICS.snapshotsRefused)).toBe(3);
    expect(counter.total(METRICS.snapshotsRefused, { reason: 'bad-signature' })).toBe(2);
    expect(counter.total(METRICS.snapshotsRefused, { reason: 'clock-skew' })).toBe(1);
    expect(counter.total(METRICS.snapshotsRefused, { reason: 'replayed' })).toBe(0);
  });

  it('names every refusal reason the ingest can give, so the alarm and the dashboard sum them all', () => {
    // A reason missing from the list would be counted but never alarmed on.
    expect(new Set(REFUSAL_REASONS).size).toBe(REFUSAL_REASONS.length);
    expect(REFUSAL_REASONS.length).toBeLessThanOrEqual(10); // metric math in an alarm takes at most 10 metrics
  });
});

describe('monitor actions', () => {
  const tick = (counts: Partial<TickSummary>): TickSummary => ({
    kind: 'tick',
    groups: 3,
    skipped: 0,
    due: 0,
    started: 0,
    coalesced: 0,
    alarmsRaised: 0,
    alarmsCleared: 0,
    failed: 0,
    reads: 4,
    ...counts,
  });

  it('reports what a tick did by kind, and an instance change only when it started a reconcile', () => {
    expect(monitorActions(tick({ started: 2, coalesced: 1, alarmsRaised: 1, scaled: 1 }))).toEqual({
      'reconcile-started': 2,
      'reconcile-coalesced': 1,
      'alarm-raised': 1,
      'alarm-cleared': 0,
      'scaling-decided': 1,
    });
    expect(monitorActions({ kind: 'ec2', instanceId: 'i-1', state: 'terminated', executionId: 'x' })).toEqual(
      {
        'instance-reconciled': 1,
      },
    );
    expect(monitorActions({ kind: 'ec2', instanceId: 'i-1', state: 'running', ignored: 'no' })).toEqual({});
  });
});

describe('wave duration', () => {
  it('runs from the apply (deadlineSeconds before the deadline) to the check that settled the wave', () => {
    const deadline = '2031-02-03T04:15:06.000Z';
    const plan = { deadlineSeconds: 900 };
    expect(waveDurationMs(plan, { status: 'converged', deadline }, AT)).toBe(300_000);
    expect(waveDurationMs(plan, { status: 'timed-out', deadline }, AT)).toBe(300_000);
    expect(waveDurationMs(plan, { status: 'waiting', deadline }, AT)).toBeUndefined();
  });
});

describe('Powertools binding of the port', () => {
  afterEach(() => vi.restoreAllMocks());

  it('keeps dimensionless counts for the invocation line and publishes a dimensioned one at once', () => {
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    const metrics = new Metrics({ namespace: 'fleetfold', serviceName: 'fleetfold' });
    const telemetry = powertoolsTelemetry(metrics);
    telemetry.count(METRICS.snapshotsIngested, 5);
    telemetry.count(METRICS.snapshotsIngested, 0);
    telemetry.milliseconds(METRICS.waveDuration, 1234);
    telemetry.count(METRICS.snapshotsRefused, 2, { reason: 'bad-signature' });

    const published = lines
      .flatMap((line) => line.split('\n'))
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({
      _aws: { CloudWatchMetrics: [{ Namespace: 'fleetfold', Dimensions: [['service', 'reason']] }] },
      service: 'fleetfold',
      reason: 'bad-signature',
      SnapshotsRefused: 2,
    });
    const invocation = metrics.serializeMetrics();
    expect(invocation).toMatchObject({ SnapshotsIngested: 5, WaveDuration: 1234 });
    expect(invocation._aws.CloudWatchMetrics[0]?.Metrics).toEqual([
      { Name: 'SnapshotsIngested', Unit: 'Count' },
      { Name: 'WaveDuration', Unit: 'Milliseconds' },
    ]);
  });
});
