import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../infra/build-app.ts';
import { INBOX_DLQ_QUERY } from '../infra/constructs/operations-alarms.ts';
import type { FleetfoldStack } from '../infra/stacks/fleetfold-stack.ts';
import { REFUSAL_REASONS } from '../shared/telemetry.ts';

/*
 * The stack as `cdk synth` builds it, cdk-nag included (an unacknowledged finding fails the synthesis and so
 * every test here): its alarms page through the alarm topic, its functions trace and log JSON, and the
 * operator's dashboard exists.
 */
let outdir: string;
let stack: FleetfoldStack;
let template: Template;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-ops-'));
  ({ stack } = buildApp({ outdir }));
  template = Template.fromStack(stack);
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

type AlarmProperties = {
  AlarmActions?: unknown[];
  OKActions?: unknown[];
  Metrics?: { Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string } } }[];
  MetricName?: string;
  Namespace?: string;
  TreatMissingData?: string;
  EvaluationPeriods?: number;
  ComparisonOperator?: string;
};

function alarms(): [string, AlarmProperties][] {
  return Object.entries(template.findResources('AWS::CloudWatch::Alarm')).map(([id, resource]) => [
    id,
    (resource as { Properties: AlarmProperties }).Properties,
  ]);
}

/** The four fleetfold functions (CDK's own deploy-time handlers are not ours to configure). */
function fleetFunctions() {
  return [stack.ingest, stack.api, stack.reconcile, stack.monitor.function].map((fn) => fn.function);
}

describe('operations alarms', () => {
  it('pages the alarm topic from every alarm in the stack, on ALARM and on OK', () => {
    const topic = { Ref: logicalId(stack.alarms.topic) };
    const all = alarms();
    expect(all.length).toBeGreaterThanOrEqual(12);
    for (const [, properties] of all) {
      expect(properties.AlarmActions).toEqual([topic]);
      expect(properties.OKActions).toEqual([topic]);
    }
  });

  it('watches errors and throttles of each function, by its own metrics', () => {
    for (const fn of fleetFunctions()) {
      for (const metric of ['Errors', 'Throttles']) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'AWS/Lambda',
          MetricName: metric,
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(fn) } }],
        });
      }
    }
  });

  it('watches the ingest DLQ, failed reconcile executions and every inbox DLQ through a Metrics Insights query', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [logicalId(stack.ingestQueue.deadLetterQueue), 'QueueName'] },
        },
      ],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/States',
      MetricName: 'ExecutionsFailed',
    });
    const inbox = alarms().filter(([, p]) => p.Metrics?.some((m) => m.Expression === INBOX_DLQ_QUERY));
    expect(inbox).toHaveLength(1);
    expect(INBOX_DLQ_QUERY).toContain("QueueName LIKE 'fleetfold-inbox-%-dlq'");
  });

  it('sums refused snapshots over every refusal reason', () => {
    const [refused] = alarms().filter(([, p]) => p.Metrics?.some((m) => m.Expression?.startsWith('SUM([')));
    expect(refused).toBeDefined();
    const metrics = refused?.[1].Metrics ?? [];
    expect(metrics.filter((m) => m.MetricStat?.Metric.MetricName === 'SnapshotsRefused')).toHaveLength(
      REFUSAL_REASONS.length,
    );
  });

  it('calls a monitor that has not run for 3 periods silent, missing data breaching', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Invocations',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(stack.monitor.function.function) } }],
      EvaluationPeriods: 3,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
  });
});

describe('function observability', () => {
  it('traces every function actively and has it log JSON with Powertools service and namespace', () => {
    const resources = template.toJSON().Resources;
    for (const fn of fleetFunctions()) {
      const properties = resources[logicalId(fn)].Properties;
      expect(properties.TracingConfig).toEqual({ Mode: 'Active' });
      expect(properties.LoggingConfig).toMatchObject({
        LogFormat: 'JSON',
        ApplicationLogLevel: 'INFO',
        SystemLogLevel: 'WARN',
      });
      expect(properties.Environment.Variables).toMatchObject({
        POWERTOOLS_SERVICE_NAME: 'fleetfold',
        POWERTOOLS_METRICS_NAMESPACE: 'fleetfold',
      });
    }
  });
});

describe('operations dashboard', () => {
  it('exists, with the ingest, refusals, rollouts, monitor and cost widgets', () => {
    const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    // The body is an Fn::Join of JSON pieces and resource references; its titles are plain text within.
    const body = JSON.stringify(dashboards[0]);
    for (const title of [
      'Ingest rate',
      'Ingest lag',
      'Refused snapshots by reason',
      'Monitor actions by kind',
      'Rollouts',
      'Waves',
      'SQS requests',
      'Lambda invocations',
      'Step Functions',
      'DynamoDB consumed capacity',
    ]) {
      expect(body).toContain(title);
    }
  });
});
