import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../infra/build-app.ts';
import { type FleetfoldStack, INGEST_SETTINGS } from '../infra/stacks/fleetfold-stack.ts';

/*
 * The monitor's part of the stack, synthesized once with cdk-nag registered as `cdk synth` runs it (an
 * unacknowledged finding makes synthesis throw), at a rate other than the default to see the prop arrive.
 */
let outdir: string;
let app: App;
let stack: FleetfoldStack;
let template: Template;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-monitor-cdk-'));
  ({ app, stack } = buildApp({ outdir, context: { monitorRateMinutes: '5' } }));
  template = Template.fromStack(stack);
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

describe('the monitor', () => {
  it('is a function told its tables, the reconcile machine, the alarm topic, its tick and the ingest heartbeat window', () => {
    const fn = template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('rules on a schedule') },
    });
    const [properties] = Object.values(fn).map(
      (resource) =>
        (resource as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties,
    );
    expect(Object.keys(properties?.Environment.Variables ?? {}).sort()).toEqual(
      [
        'ALARM_TOPIC_ARN',
        'DOCUMENTS_TABLE',
        'EVENTS_TABLE',
        'FLEET_STACK_TAG',
        'HEARTBEAT_COALESCE_SECONDS',
        'HOSTS_TABLE',
        'MONITOR_TICK_SECONDS',
        'NODE_OPTIONS',
        'POWERTOOLS_METRICS_NAMESPACE',
        'POWERTOOLS_SERVICE_NAME',
        'RECONCILE_STATE_MACHINE_ARN',
      ].sort(),
    );
    expect(properties?.Environment.Variables.MONITOR_TICK_SECONDS).toBe('300');
    // The monitor allows for the window the ingest coalesces heartbeats by: the two must agree.
    expect(properties?.Environment.Variables.HEARTBEAT_COALESCE_SECONDS).toBe(
      INGEST_SETTINGS.HEARTBEAT_COALESCE_SECONDS,
    );
  });

  it('ticks on an EventBridge Scheduler schedule at the configured rate, no flexible window, retried, with a DLQ', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(5 minutes)',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      Target: Match.objectLike({
        Arn: { 'Fn::GetAtt': [logicalId(stack.monitor.function.function), 'Arn'] },
        Input: Match.stringLikeRegexp('<aws.scheduler.scheduled-time>'),
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 300 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(stack.monitor.deadLetterQueue), 'Arn'] } },
      }),
    });
  });

  it('ticks every minute by default', () => {
    const defaults = buildApp({
      context: { 'aws:cdk:bundling-stacks': [] },
      outdir: mkdtempSync(path.join(outdir, 'defaults-')),
    }).stack;
    const cfn = defaults.monitor.schedule.node.defaultChild as CfnElement;
    expect(defaults.resolve((cfn as unknown as { scheduleExpression: string }).scheduleExpression)).toBe(
      'rate(1 minute)',
    );
  });

  it('hears of EC2 instances stopping and ending', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['EC2 Instance State-change Notification'],
        detail: { state: ['stopping', 'stopped', 'shutting-down', 'terminated'] },
      },
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logicalId(stack.monitor.function.function), 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(stack.monitor.deadLetterQueue), 'Arn'] } },
        }),
      ],
    });
  });

  it('may start reconcile runs, read hosts, describe instances and publish alarms', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: logicalId(stack.monitor.function.role) }] },
    });
    const statements = Object.values(policies).flatMap(
      (policy) =>
        (policy as { Properties: { PolicyDocument: { Statement: { Action: string | string[] }[] } } })
          .Properties.PolicyDocument.Statement,
    );
    const actions = new Set(statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])));
    for (const action of ['states:StartExecution', 'ec2:DescribeInstances', 'sns:Publish', 'dynamodb:Query'])
      expect(actions).toContain(action);
    expect(actions).not.toContain('ec2:TerminateInstances');
  });

  it('leaves cdk-nag AwsSolutions with nothing unacknowledged', () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(findings).toEqual([]);
  });
});
