import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { acknowledge, nagArn } from './nag.ts';

/** State names are part of the contract: local overrides and tests address states by them. */
export const RECONCILE_STATES = {
  plan: 'Plan',
  held: 'Held?',
  queueWait: 'QueueWait',
  requeue: 'Requeue',
  served: 'Served',
  revertPass: 'RevertPass',
  reverting: 'Reverting?',
  rolloutFailed: 'RolloutFailed',
  waves: 'Waves',
  apply: 'Apply',
  wait: 'Wait',
  check: 'Check',
  converged: 'Converged?',
  waveDone: 'WaveDone',
  waveFailed: 'WaveFailed',
  rollback: 'Rollback',
  reconcileFailed: 'ReconcileFailed',
  finish: 'Finish',
  followUp: 'FollowUp?',
  nextPass: 'NextPass',
  passWait: 'PassWait',
  done: 'Done',
} as const;

/** Errors of the reconcile function worth trying again: transient Lambda trouble and a lost version race. */
export const RETRIED_FUNCTION_ERRORS = [
  'Lambda.TooManyRequestsException',
  'Lambda.Unknown',
  'ConflictError',
  'TimeoutError',
];

export interface ReconcileStateMachineProps {
  /** The reconcile function; every task invokes it with a `step` discriminator. */
  readonly reconcileFunction: lambda.IFunction;
  /**
   * Longest a run may take before Step Functions stops it.
   * @default Duration.hours(24)
   */
  readonly timeout?: Duration;
  /**
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The reconcile loop: Plan → Map(waves, one at a time: Apply → Wait → Check until converged) → Finish; a
 * failed wave is caught and rolled back. Standard workflow (runs may wait for hours) written in JSONPath, so
 * the same definition runs locally in aws-local-stepfunctions, which does not do JSONata.
 */
export class ReconcileStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ReconcileStateMachineProps) {
    super(scope, id);
    const invoke = (
      name: string,
      payload: Record<string, unknown>,
      fields: readonly string[],
      resultPath: string,
    ) => {
      const task = new tasks.LambdaInvoke(this, name, {
        stateName: name,
        lambdaFunction: props.reconcileFunction,
        payload: sfn.TaskInput.fromObject(payload),
        // Only the step's own answer: the Lambda response metadata would crowd the 256 KB payload.
        resultSelector: Object.fromEntries(fields.map((field) => [`${field}.$`, `$.Payload.${field}`])),
        resultPath,
        retryOnServiceExceptions: true,
        taskTimeout: sfn.Timeout.duration(Duration.minutes(5)),
      });
      task.addRetry({
        errors: RETRIED_FUNCTION_ERRORS,
        interval: Duration.seconds(1),
        maxAttempts: 5,
        backoffRate: 2,
      });
      return task;
    };

    const plan = invoke(
      RECONCILE_STATES.plan,
      {
        step: 'plan',
        'request.$': '$',
        'executionName.$': '$$.Execution.Name',
        'executionStart.$': '$$.Execution.StartTime',
      },
      [
        'planId',
        'group',
        'run',
        'lease',
        'ticket',
        'rolloutId',
        'revert',
        'waves',
        'deadlineSeconds',
        'pollSeconds',
        'followUps',
      ],
      '$.plan',
    );
    // One run acts on a group at a time: a run that finds it held waits with a ticket and asks again, until
    // the holder has planned after it (served: its work is done) or the holder's lease ran out (it takes over).
    const queueWait = new sfn.Wait(this, RECONCILE_STATES.queueWait, {
      stateName: RECONCILE_STATES.queueWait,
      time: sfn.WaitTime.secondsPath('$.plan.pollSeconds'),
    });
    const requeue = new sfn.Pass(this, RECONCILE_STATES.requeue, {
      stateName: RECONCILE_STATES.requeue,
      parameters: {
        'group.$': '$.plan.group',
        reason: 'queued',
        'followUps.$': '$.plan.followUps',
        'ticket.$': '$.plan.ticket',
      },
    });
    const waveFields = ['status', 'detail', 'deadline'];
    const apply = invoke(
      RECONCILE_STATES.apply,
      { step: 'apply', 'plan.$': '$.plan', 'wave.$': '$.wave' },
      waveFields,
      '$.check',
    );
    const wait = new sfn.Wait(this, RECONCILE_STATES.wait, {
      stateName: RECONCILE_STATES.wait,
      time: sfn.WaitTime.secondsPath('$.plan.pollSeconds'),
    });
    const check = invoke(
      RECONCILE_STATES.check,
      { step: 'check', 'plan.$': '$.plan', 'wave.$': '$.wave', 'deadline.$': '$.check.deadline' },
      waveFields,
      '$.check',
    );
    const waveFailed = new sfn.Fail(this, RECONCILE_STATES.waveFailed, {
      stateName: RECONCILE_STATES.waveFailed,
      error: 'WaveFailed',
      causePath: '$.check.detail',
    });
    const converged = new sfn.Choice(this, RECONCILE_STATES.converged, {
      stateName: RECONCILE_STATES.converged,
    })
      .when(
        sfn.Condition.stringEquals('$.check.status', 'converged'),
        new sfn.Succeed(this, RECONCILE_STATES.waveDone, { stateName: RECONCILE_STATES.waveDone }),
      )
      .when(sfn.Condition.stringEquals('$.check.status', 'waiting'), wait)
      .otherwise(waveFailed);

    const waves = new sfn.Map(this, RECONCILE_STATES.waves, {
      stateName: RECONCILE_STATES.waves,
      itemsPath: '$.plan.waves',
      // One wave at a time: a wave starts only once the previous one converged.
      maxConcurrency: 1,
      itemSelector: { 'plan.$': '$.plan', 'wave.$': '$$.Map.Item.Value' },
      resultPath: sfn.JsonPath.DISCARD,
    });
    // Check right after Apply (it looks again for a while itself); wait only when it is still waiting.
    wait.next(check);
    waves.itemProcessor(apply.next(check).next(converged));

    const rollback = invoke(
      RECONCILE_STATES.rollback,
      { step: 'rollback', 'plan.$': '$.plan', 'failure.$': '$.failure' },
      ['status', 'again', 'followUps', 'rolloutId'],
      '$.rollback',
    );
    const reconcileFailed = new sfn.Fail(this, RECONCILE_STATES.reconcileFailed, {
      stateName: RECONCILE_STATES.reconcileFailed,
      error: 'ReconcileFailed',
      causePath: '$.failure.Cause',
    });
    // A rollout that failed or was aborted is reverted by planning again: the same waves, drains and budget.
    const revertPass = new sfn.Pass(this, RECONCILE_STATES.revertPass, {
      stateName: RECONCILE_STATES.revertPass,
      parameters: {
        'group.$': '$.plan.group',
        reason: 'revert',
        'rolloutId.$': '$.rollback.rolloutId',
        'followUps.$': '$.rollback.followUps',
      },
    });
    const reverting = new sfn.Choice(this, RECONCILE_STATES.reverting, {
      stateName: RECONCILE_STATES.reverting,
    })
      .when(sfn.Condition.booleanEquals('$.rollback.again', true), revertPass.next(plan))
      .otherwise(reconcileFailed);
    waves.addCatch(rollback.next(reverting), { errors: ['States.ALL'], resultPath: '$.failure' });

    const finish = invoke(
      RECONCILE_STATES.finish,
      { step: 'finish', 'plan.$': '$.plan' },
      ['status', 'again', 'followUps', 'rolloutId', 'failed', 'cause'],
      '$.finish',
    );
    // Another pass when Finish asks for one (see finishStep): after a plan that launched hosts, whose load
    // balancers need their endpoints, and while a rollout still waits for hosts coming up.
    const nextPass = new sfn.Pass(this, RECONCILE_STATES.nextPass, {
      stateName: RECONCILE_STATES.nextPass,
      parameters: {
        'group.$': '$.plan.group',
        reason: 'follow-up',
        'rolloutId.$': '$.finish.rolloutId',
        'followUps.$': '$.finish.followUps',
      },
    });
    const passWait = new sfn.Wait(this, RECONCILE_STATES.passWait, {
      stateName: RECONCILE_STATES.passWait,
      time: sfn.WaitTime.secondsPath('$.plan.pollSeconds'),
    });
    const followUp = new sfn.Choice(this, RECONCILE_STATES.followUp, { stateName: RECONCILE_STATES.followUp })
      .when(sfn.Condition.booleanEquals('$.finish.again', true), passWait.next(nextPass).next(plan))
      // A rollout that was reverted (or aborted, or gave up) ends the run failed, naming why.
      .when(
        sfn.Condition.booleanEquals('$.finish.failed', true),
        new sfn.Fail(this, RECONCILE_STATES.rolloutFailed, {
          stateName: RECONCILE_STATES.rolloutFailed,
          error: 'ReconcileFailed',
          causePath: '$.finish.cause',
        }),
      )
      .otherwise(new sfn.Succeed(this, RECONCILE_STATES.done, { stateName: RECONCILE_STATES.done }));

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(
        plan.next(
          new sfn.Choice(this, RECONCILE_STATES.held, { stateName: RECONCILE_STATES.held })
            .when(sfn.Condition.stringEquals('$.plan.lease', 'queued'), queueWait.next(requeue).next(plan))
            .when(
              sfn.Condition.stringEquals('$.plan.lease', 'served'),
              new sfn.Succeed(this, RECONCILE_STATES.served, { stateName: RECONCILE_STATES.served }),
            )
            .otherwise(waves.next(finish).next(followUp)),
        ),
      ),
      stateMachineType: sfn.StateMachineType.STANDARD,
      queryLanguage: sfn.QueryLanguage.JSON_PATH,
      timeout: props.timeout ?? Duration.hours(24),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      comment:
        'fleetfold reconcile: plan, apply waves one at a time, await convergence, roll back on failure',
    });
    acknowledge(this.stateMachine, {
      'AwsSolutions-IAM5[Resource::*]':
        'Step Functions log delivery and X-Ray actions (logs:CreateLogDelivery, xray:PutTraceSegments …) support no resource-level permissions.',
    });
    // An imported function (local mode's ASL synthesis) has no resource of its own and no finding to acknowledge.
    if (props.reconcileFunction.node.defaultChild) {
      acknowledge(this.stateMachine, {
        [`AwsSolutions-IAM5[Resource::${nagArn(props.reconcileFunction)}:*]`]:
          'lambda:InvokeFunction on the reconcile function and its versions/aliases (":*"), which is how CDK grants a task its function; no other function.',
      });
    }
  }
}
