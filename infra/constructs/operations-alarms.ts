import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { DLQ_SUFFIX, INBOX_QUEUE_PREFIX } from '../../shared/groups/fanout.ts';
import { METRICS, METRICS_NAMESPACE, REFUSAL_REASONS, SERVICE_NAME } from '../../shared/telemetry.ts';

/** The functions' own metrics, as the Powertools Metrics of functions/observability.ts publishes them. */
export function fleetMetric(
  metricName: string,
  options: { dimensions?: Record<string, string>; period?: Duration; statistic?: string } = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME, ...options.dimensions },
    period: options.period ?? Duration.minutes(5),
    statistic: options.statistic ?? cloudwatch.Stats.SUM,
  });
}

/** Refused snapshots of every reason, one series (metric math over the closed list of reasons). */
export function refusedSnapshots(period: Duration, label = 'refused snapshots'): cloudwatch.MathExpression {
  const usingMetrics = Object.fromEntries(
    REFUSAL_REASONS.map((reason, index) => [
      `r${index}`,
      fleetMetric(METRICS.snapshotsRefused, { dimensions: { reason }, period }),
    ]),
  );
  return new cloudwatch.MathExpression({
    expression: `SUM([${Object.keys(usingMetrics).join(',')}])`,
    usingMetrics,
    period,
    label,
  });
}

/**
 * Messages waiting in any host's inbox DLQ. The inboxes are made at run time (one per host), so no alarm can
 * name them: a Metrics Insights query over every queue named like one does, and follows the fleet as it grows.
 */
export const INBOX_DLQ_QUERY = `SELECT MAX(ApproximateNumberOfMessagesVisible) FROM SCHEMA("AWS/SQS", QueueName) WHERE QueueName LIKE '${INBOX_QUEUE_PREFIX}%${DLQ_SUFFIX}'`;

export interface OperationsAlarmsProps {
  /** Every alarm's ALARM action (and OK, so a page is followed by its all-clear). */
  readonly alarmTopic: sns.ITopic;
  readonly ingestDeadLetterQueue: sqs.IQueue;
  readonly reconcileStateMachine: sfn.IStateMachine;
  /** Name (used in alarm ids and descriptions) → function; each gets an errors and a throttles alarm. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** The monitor function, expected to run every `monitorPeriod`. */
  readonly monitorFunction: lambda.IFunction;
  /**
   * @default Duration.minutes(1)
   */
  readonly monitorPeriod?: Duration;
  /**
   * Refused snapshots in 5 minutes above which someone should look (a host with a wrong secret or clock
   * refuses every post, one a minute; a tenth of a 1,000-host fleet doing it is 500).
   * @default 50
   */
  readonly refusedSnapshotsPer5Minutes?: number;
}

/**
 * The alarms an operator is paged by, each with the alarm topic as its action: messages parked in a DLQ
 * (the ingest's and any host inbox's), failed reconcile executions, function errors and throttles, a burst
 * of refused snapshots, and a monitor that stopped running.
 */
export class OperationsAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  private readonly topic: sns.ITopic;

  constructor(scope: Construct, id: string, props: OperationsAlarmsProps) {
    super(scope, id);
    this.topic = props.alarmTopic;
    const fiveMinutes = Duration.minutes(5);
    const monitorPeriod = props.monitorPeriod ?? Duration.minutes(1);

    this.add('IngestDeadLetters', {
      metric: props.ingestDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: fiveMinutes,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      description:
        'Snapshot notifications the ingest failed 5 times are waiting in its DLQ (redrive or inspect).',
    });
    this.add('InboxDeadLetters', {
      metric: new cloudwatch.MathExpression({
        expression: INBOX_DLQ_QUERY,
        usingMetrics: {},
        period: fiveMinutes,
        label: 'messages in inbox DLQs',
      }),
      threshold: 1,
      description:
        'A host could not process a desired state 5 times (or SNS could not deliver it): it waits in the host inbox DLQ.',
    });
    this.add('ReconcileExecutionsFailed', {
      metric: props.reconcileStateMachine.metricFailed({ period: fiveMinutes }),
      threshold: 1,
      description: 'A reconcile run failed (a rollout rolled back or could not finish): see the execution.',
    });
    for (const [name, fn] of Object.entries(props.functions)) {
      this.add(`${name}Errors`, {
        metric: fn.metricErrors({ period: fiveMinutes }),
        threshold: 1,
        description: `The ${name} function failed invocations (its log group has the errors).`,
      });
      this.add(`${name}Throttles`, {
        metric: fn.metricThrottles({ period: fiveMinutes }),
        threshold: 1,
        description: `The ${name} function was throttled: concurrency is exhausted.`,
      });
    }
    this.add('SnapshotsRefused', {
      metric: refusedSnapshots(fiveMinutes),
      threshold: props.refusedSnapshotsPer5Minutes ?? 50,
      description:
        'Many snapshots were refused (bad signature, clock skew, unknown host…): the dashboard shows the reasons.',
    });
    // No invocation at all is no datapoint, so missing data has to count as breaching here.
    this.add('MonitorSilent', {
      metric: props.monitorFunction.metricInvocations({ period: monitorPeriod }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      description: 'The monitor has not run for 3 periods: nothing replaces failed hosts or applies rules.',
    });
  }

  private add(
    id: string,
    options: {
      metric: cloudwatch.IMetric;
      threshold: number;
      description: string;
      comparisonOperator?: cloudwatch.ComparisonOperator;
      evaluationPeriods?: number;
      treatMissingData?: cloudwatch.TreatMissingData;
    },
  ): void {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric: options.metric,
      threshold: options.threshold,
      alarmDescription: `fleetfold: ${options.description}`,
      comparisonOperator:
        options.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      treatMissingData: options.treatMissingData ?? cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const action = new actions.SnsAction(this.topic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this.alarms.push(alarm);
  }
}
