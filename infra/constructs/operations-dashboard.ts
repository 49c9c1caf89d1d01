import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { INBOX_QUEUE_PREFIX } from '../../shared/groups/fanout.ts';
import { METRICS, MONITOR_ACTION_KINDS, REFUSAL_REASONS } from '../../shared/telemetry.ts';
import { fleetMetric, INBOX_DLQ_QUERY, refusedSnapshots } from './operations-alarms.ts';

export interface OperationsDashboardProps {
  readonly ingestQueue: sqs.IQueue;
  readonly reconcileStateMachine: sfn.IStateMachine;
  /** Name → function, for the invocations that drive the Lambda bill. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  readonly tables: readonly dynamodb.ITable[];
  /**
   * @default 'fleetfold'
   */
  readonly dashboardName?: string;
}

const PERIOD = Duration.minutes(5);
const WIDE = 12;

/**
 * One CloudWatch dashboard for the operator: what comes in (snapshot rate, queue lag, refusals by reason),
 * what the control plane does (rollouts, waves, monitor actions), and the requests the bill is made of
 * (SQS, Lambda, Step Functions transitions, DynamoDB capacity).
 */
export class OperationsDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const count = (metricName: string, label: string, dimensions?: Record<string, string>) =>
      fleetMetric(metricName, { period: PERIOD, ...(dimensions ? { dimensions } : {}) }).with({ label });
    const graph = (
      title: string,
      left: cloudwatch.IMetric[],
      extra: Partial<cloudwatch.GraphWidgetProps> = {},
    ) => new cloudwatch.GraphWidget({ title, left, width: WIDE, period: PERIOD, ...extra });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName ?? 'fleetfold',
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(
      graph('Ingest rate (snapshots per 5 min)', [
        count(METRICS.snapshotsIngested, 'ingested'),
        refusedSnapshots(PERIOD),
        count(METRICS.eventsAppended, 'events appended'),
      ]),
      graph(
        'Ingest lag',
        [
          props.ingestQueue.metricApproximateAgeOfOldestMessage({
            period: PERIOD,
            label: 'oldest message (s)',
          }),
        ],
        {
          right: [
            props.ingestQueue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, label: 'waiting' }),
          ],
        },
      ),
    );
    this.dashboard.addWidgets(
      graph(
        'Refused snapshots by reason',
        REFUSAL_REASONS.map((reason) => count(METRICS.snapshotsRefused, reason, { reason })),
        { stacked: true },
      ),
      graph(
        'Monitor actions by kind',
        MONITOR_ACTION_KINDS.map((kind) => count(METRICS.monitorActions, kind, { kind })),
        { stacked: true },
      ),
    );
    this.dashboard.addWidgets(
      graph('Rollouts', [
        count(METRICS.rolloutsStarted, 'started'),
        count(METRICS.rolloutsSucceeded, 'succeeded'),
        count(METRICS.rolloutsFailed, 'failed'),
        count(METRICS.rolloutsRolledBack, 'rolled back'),
        count(METRICS.alarmsRaised, 'alarms raised'),
      ]),
      graph('Waves', [count(METRICS.wavesSettled, 'waves settled')], {
        right: [
          fleetMetric(METRICS.waveDuration, { period: PERIOD, statistic: cloudwatch.Stats.AVERAGE }).with({
            label: 'wave duration, mean (ms)',
          }),
          fleetMetric(METRICS.waveDuration, { period: PERIOD, statistic: cloudwatch.Stats.MAXIMUM }).with({
            label: 'wave duration, max (ms)',
          }),
        ],
      }),
    );
    this.dashboard.addWidgets(
      graph('SQS requests (what the bill counts)', [
        insights(
          `SELECT SUM(NumberOfEmptyReceives) FROM SCHEMA("AWS/SQS", QueueName) WHERE QueueName LIKE '${INBOX_QUEUE_PREFIX}%'`,
          'inbox empty receives',
        ),
        insights(
          `SELECT SUM(NumberOfMessagesReceived) FROM SCHEMA("AWS/SQS", QueueName) WHERE QueueName LIKE '${INBOX_QUEUE_PREFIX}%'`,
          'inbox messages received',
        ),
        props.ingestQueue.metricNumberOfMessagesReceived({
          period: PERIOD,
          label: 'ingest messages received',
        }),
        props.ingestQueue.metricNumberOfEmptyReceives({ period: PERIOD, label: 'ingest empty receives' }),
        insights(INBOX_DLQ_QUERY, 'messages in inbox DLQs'),
      ]),
      graph(
        'Lambda invocations',
        Object.entries(props.functions).map(([name, fn]) =>
          fn.metricInvocations({ period: PERIOD, label: name }),
        ),
        { stacked: true },
      ),
    );
    this.dashboard.addWidgets(
      graph('Step Functions', [
        props.reconcileStateMachine.metricStarted({ period: PERIOD, label: 'executions started' }),
        props.reconcileStateMachine.metricFailed({ period: PERIOD, label: 'executions failed' }),
        // Standard workflows bill per state transition; the account-level counter is the one CloudWatch has.
        new cloudwatch.Metric({
          namespace: 'AWS/States',
          metricName: 'ConsumedCapacity',
          dimensionsMap: { ServiceMetric: 'StateTransition' },
          statistic: cloudwatch.Stats.SUM,
          period: PERIOD,
          label: 'state transitions (account)',
        }),
      ]),
      graph(
        'DynamoDB consumed capacity',
        props.tables.flatMap((table) => [
          table.metricConsumedWriteCapacityUnits({ period: PERIOD, label: `${table.node.id} WCU` }),
          table.metricConsumedReadCapacityUnits({ period: PERIOD, label: `${table.node.id} RCU` }),
        ]),
      ),
    );
  }
}

/** A Metrics Insights query as one series of a graph (inbox queues are made at run time, so none is named). */
function insights(expression: string, label: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({ expression, usingMetrics: {}, period: PERIOD, label });
}
