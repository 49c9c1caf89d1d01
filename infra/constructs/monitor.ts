import { Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { bindTable, bindTopicPublish } from './bindings.ts';
import { FleetFunction } from './fleet-function.ts';
import { acknowledge, nagArn } from './nag.ts';

/** EC2 states after which an instance no longer is its host (functions/monitor/handler.ts ENDING_STATES). */
export const MONITORED_INSTANCE_STATES = ['stopping', 'stopped', 'shutting-down', 'terminated'] as const;

export interface MonitorProps {
  readonly tables: {
    readonly events: dynamodb.Table;
    readonly hosts: dynamodb.Table;
    readonly documents: dynamodb.Table;
  };
  /** The reconcile state machine the monitor starts runs of. */
  readonly reconcileStateMachine: sfn.IStateMachine;
  /**
   * Where the alarms the monitor raises are published.
   * @default none: alarms are only recorded in the group streams and the alarm listing
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * How often the monitor ticks. A tick names its reconcile starts after its period, so the function is told it.
   * @default Duration.minutes(1)
   */
  readonly rate?: Duration;
  /**
   * Value of the `fleetfold:stack` tag of this stack's instances; EC2 events of any other instance are ignored.
   * @default the stack name
   */
  readonly stackTag?: string;
  /**
   * @default Duration.minutes(1)
   */
  readonly timeout?: Duration;
  /** Settings the function reads beside its tick (the ingest's heartbeat coalescing window). */
  readonly environment?: Readonly<Record<string, string>>;
}

/**
 * The stateless monitor: a function run by an EventBridge Scheduler schedule (a fixed rate, no flexible window,
 * retried, a dead-letter queue for the ticks it could not deliver) and by EC2's instance state-change events of
 * stopping and ended instances, which reconcile the instance's group at once rather than at the next tick.
 */
export class Monitor extends Construct {
  readonly function: FleetFunction;
  readonly schedule: scheduler.Schedule;
  readonly instanceChanges: events.Rule;
  /** Ticks and instance events that could not be delivered to the function, kept for inspection. */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: MonitorProps) {
    super(scope, id);
    const rate = props.rate ?? Duration.minutes(1);
    this.function = new FleetFunction(this, 'Function', {
      entry: 'functions/monitor/index.ts',
      description:
        "Evaluates each running group's rules on a schedule and starts a reconcile when one is due",
      memorySize: 512,
      timeout: props.timeout ?? Duration.minutes(1),
      environment: { ...props.environment, MONITOR_TICK_SECONDS: String(rate.toSeconds()) },
    });
    // Hosts are only read; alarms are appended to the group streams and projected into the documents.
    bindTable(this.function, 'EVENTS_TABLE', props.tables.events, 'readWrite');
    bindTable(this.function, 'HOSTS_TABLE', props.tables.hosts, 'read');
    bindTable(this.function, 'DOCUMENTS_TABLE', props.tables.documents, 'readWrite');
    this.function.function.addEnvironment(
      'RECONCILE_STATE_MACHINE_ARN',
      props.reconcileStateMachine.stateMachineArn,
    );
    props.reconcileStateMachine.grantStartExecution(this.function.function);
    if (props.alarmTopic) bindTopicPublish(this.function, 'ALARM_TOPIC_ARN', props.alarmTopic);
    this.grantDescribeInstances(props.stackTag ?? Stack.of(this).stackName);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(this.deadLetterQueue, {
      'AwsSolutions-SQS3':
        'This queue is itself the dead-letter queue of the monitor schedule and of the EC2 state-change rule.',
    });
    // A tick older than the next one is worth nothing: the next tick reads the same streams afresh.
    const maxEventAge = Duration.seconds(Math.min(24 * 3600, Math.max(60, rate.toSeconds())));
    // An own role rather than the stack-wide one aws-scheduler-targets would make: it invokes this function only.
    const scheduleRole = new iam.Role(this, 'ScheduleRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'Lets EventBridge Scheduler invoke the fleetfold monitor',
    });
    acknowledge(scheduleRole, {
      [`AwsSolutions-IAM5[Resource::${nagArn(this.function.function)}:*]`]:
        'lambda:InvokeFunction on the monitor function and its versions and aliases ("<arn>:*"), as the scheduler target grants it; no other function.',
    });
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Ticks the fleetfold monitor',
      schedule: scheduler.ScheduleExpression.rate(rate),
      timeWindow: scheduler.TimeWindow.off(),
      target: new schedulerTargets.LambdaInvoke(this.function.function, {
        // The scheduled time names the tick: a retried delivery starts no reconcile twice.
        input: scheduler.ScheduleTargetInput.fromObject({
          source: 'fleetfold.monitor',
          scheduledTime: scheduler.ContextAttribute.scheduledTime,
        }),
        retryAttempts: 2,
        maxEventAge,
        deadLetterQueue: this.deadLetterQueue,
        role: scheduleRole,
      }),
    });

    this.instanceChanges = new events.Rule(this, 'InstanceStateChanges', {
      description: 'EC2 instances stopping or ending: their fleetfold group is reconciled at once',
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['EC2 Instance State-change Notification'],
        detail: { state: [...MONITORED_INSTANCE_STATES] },
      },
      targets: [
        new eventTargets.LambdaFunction(this.function.function, {
          retryAttempts: 4,
          maxEventAge: Duration.hours(1),
          deadLetterQueue: this.deadLetterQueue,
        }),
      ],
    });
  }

  /** The instance's tags say whose it is; DescribeInstances has no resource-level permissions to narrow it. */
  private grantDescribeInstances(stackTag: string): void {
    this.function.function.addEnvironment('FLEET_STACK_TAG', stackTag);
    this.function.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'DescribeInstances',
        actions: ['ec2:DescribeInstances'],
        resources: ['*'],
      }),
    );
    acknowledge(this.function.role, {
      'AwsSolutions-IAM5[Resource::*]':
        "ec2:DescribeInstances supports no resource-level permissions; the monitor reads one instance's tags per state-change event and ignores instances without this stack's fleetfold:stack tag.",
    });
  }
}
