import type { CfnElement } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../infra/build-app.ts';
import { RECONCILE_STATES } from '../infra/constructs/reconcile-state-machine.ts';
import {
  definitionOf,
  RECONCILE_FUNCTION_PLACEHOLDER_ARN,
  reconcileAsl,
} from '../infra/local/reconcile-asl.ts';
import type { FleetfoldStack } from '../infra/stacks/fleetfold-stack.ts';
import { executionArnFor, executionNameFor } from '../shared/adapters/sfn-reconcile-starter.ts';

let stack: FleetfoldStack;
let template: Template;
let fullAsl: StateMachineDefinition;

beforeAll(() => {
  // No bundling: the template's state machine does not depend on the function's code.
  ({ stack } = buildApp({ context: { 'aws:cdk:bundling-stacks': [] } }));
  template = Template.fromStack(stack);
  const reconcileId = stack.getLogicalId(stack.reconcile.function.node.defaultChild as CfnElement);
  fullAsl = definitionOf(stack.reconcileMachine.stateMachine, (logicalId, attribute) => {
    if (logicalId === reconcileId && attribute === 'Arn') return RECONCILE_FUNCTION_PLACEHOLDER_ARN;
    throw new Error(`unexpected reference ${logicalId}.${attribute}`);
  });
}, 120_000);

type States = Record<string, Record<string, unknown>>;
const states = (asl: StateMachineDefinition) => asl.States as unknown as States;
const waveStates = (asl: StateMachineDefinition) =>
  (states(asl)[RECONCILE_STATES.waves] as { ItemProcessor: { States: States } }).ItemProcessor.States;

describe('reconcile state machine', () => {
  it('runs locally exactly the definition the stack deploys', () => {
    expect(reconcileAsl()).toEqual(fullAsl);
  });

  it('is a Standard workflow with full logging and tracing', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
    });
  });

  it('plans, maps over the waves one at a time and finishes', () => {
    expect(fullAsl.StartAt).toBe(RECONCILE_STATES.plan);
    const waves = states(fullAsl)[RECONCILE_STATES.waves];
    expect(waves).toMatchObject({
      Type: 'Map',
      MaxConcurrency: 1,
      ItemsPath: '$.plan.waves',
      Next: RECONCILE_STATES.finish,
      ResultPath: null,
    });
    expect(waves?.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: RECONCILE_STATES.rollback },
    ]);
    // A failed or aborted rollout is reverted by another pass (the same waves, drains and budget); without
    // a rollout to revert the run fails.
    expect(states(fullAsl)[RECONCILE_STATES.rollback]?.Next).toBe(RECONCILE_STATES.reverting);
    expect(states(fullAsl)[RECONCILE_STATES.reverting]).toMatchObject({
      Choices: [{ Variable: '$.rollback.again', BooleanEquals: true, Next: RECONCILE_STATES.revertPass }],
      Default: RECONCILE_STATES.reconcileFailed,
    });
    expect(states(fullAsl)[RECONCILE_STATES.revertPass]?.Next).toBe(RECONCILE_STATES.plan);
  });

  it('lets one run act on a group at a time: a run that finds it held waits with its ticket, or ends once served', () => {
    expect(states(fullAsl)[RECONCILE_STATES.plan]?.Next).toBe(RECONCILE_STATES.held);
    expect(states(fullAsl)[RECONCILE_STATES.held]).toMatchObject({
      Choices: [
        { Variable: '$.plan.lease', StringEquals: 'queued', Next: RECONCILE_STATES.queueWait },
        { Variable: '$.plan.lease', StringEquals: 'served', Next: RECONCILE_STATES.served },
      ],
      Default: RECONCILE_STATES.waves,
    });
    expect(states(fullAsl)[RECONCILE_STATES.queueWait]).toMatchObject({
      Type: 'Wait',
      SecondsPath: '$.plan.pollSeconds',
      Next: RECONCILE_STATES.requeue,
    });
    expect(states(fullAsl)[RECONCILE_STATES.requeue]).toMatchObject({
      Type: 'Pass',
      Parameters: { 'ticket.$': '$.plan.ticket' },
      Next: RECONCILE_STATES.plan,
    });
    expect(states(fullAsl)[RECONCILE_STATES.served]).toMatchObject({ Type: 'Succeed' });
  });

  it('ends a run whose rollout did not succeed failed, naming why', () => {
    expect(states(fullAsl)[RECONCILE_STATES.followUp]).toMatchObject({
      Choices: [
        { Variable: '$.finish.again', BooleanEquals: true, Next: RECONCILE_STATES.passWait },
        { Variable: '$.finish.failed', BooleanEquals: true, Next: RECONCILE_STATES.rolloutFailed },
      ],
      Default: RECONCILE_STATES.done,
    });
    expect(states(fullAsl)[RECONCILE_STATES.rolloutFailed]).toMatchObject({
      Type: 'Fail',
      Error: 'ReconcileFailed',
      CausePath: '$.finish.cause',
    });
  });

  it('applies, checks, and waits and checks again each wave until it converges, and fails it otherwise', () => {
    const inner = waveStates(fullAsl);
    expect(inner[RECONCILE_STATES.apply]?.Next).toBe(RECONCILE_STATES.check);
    expect(inner[RECONCILE_STATES.wait]).toMatchObject({
      Type: 'Wait',
      SecondsPath: '$.plan.pollSeconds',
      Next: RECONCILE_STATES.check,
    });
    expect(inner[RECONCILE_STATES.check]?.Next).toBe(RECONCILE_STATES.converged);
    expect(inner[RECONCILE_STATES.converged]).toMatchObject({
      Choices: [
        { Variable: '$.check.status', StringEquals: 'converged', Next: RECONCILE_STATES.waveDone },
        { Variable: '$.check.status', StringEquals: 'waiting', Next: RECONCILE_STATES.wait },
      ],
      Default: RECONCILE_STATES.waveFailed,
    });
    expect(inner[RECONCILE_STATES.waveFailed]).toMatchObject({ Type: 'Fail', Error: 'WaveFailed' });
  });

  it('invokes one function with a step discriminator and retries transient errors and lost races', () => {
    const tasks = {
      ...Object.fromEntries(
        [RECONCILE_STATES.plan, RECONCILE_STATES.rollback, RECONCILE_STATES.finish].map((name) => [
          name,
          states(fullAsl)[name],
        ]),
      ),
      [RECONCILE_STATES.apply]: waveStates(fullAsl)[RECONCILE_STATES.apply],
      [RECONCILE_STATES.check]: waveStates(fullAsl)[RECONCILE_STATES.check],
    };
    const steps = Object.values(tasks).map((task) => {
      expect(task?.Resource).toBe('arn:aws:states:::lambda:invoke');
      const parameters = task?.Parameters as { FunctionName: string; Payload: { step: string } };
      expect(parameters.FunctionName).toBe(RECONCILE_FUNCTION_PLACEHOLDER_ARN);
      const retries = (task?.Retry ?? []) as { ErrorEquals: string[] }[];
      const retried = retries.flatMap((retry) => retry.ErrorEquals);
      expect(retried).toEqual(
        expect.arrayContaining([
          'Lambda.ServiceException',
          'Lambda.TooManyRequestsException',
          'ConflictError',
        ]),
      );
      return parameters.Payload.step;
    });
    expect(steps.sort()).toEqual(['apply', 'check', 'finish', 'plan', 'rollback']);
  });

  it('lets only the reconcile function run the steps and the api start runs', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'states:StartExecution',
            Resource: {
              Ref: stack.getLogicalId(stack.reconcileMachine.stateMachine.node.defaultChild as CfnElement),
            },
          }),
        ]),
      },
    });
  });
});

describe('execution names', () => {
  it('keeps a clean dedupe key as it is', () => {
    expect(executionNameFor('rollout-r-01HX_2')).toBe('rollout-r-01HX_2');
  });

  it('sanitizes and shortens other keys to 80 characters of [A-Za-z0-9-_] without collapsing them', () => {
    const a = executionNameFor(`group-${'x'.repeat(100)}#start/1`);
    const b = executionNameFor(`group-${'x'.repeat(100)}#start/2`);
    for (const name of [a, b]) expect(name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(a).not.toBe(b);
    expect(executionNameFor('a.b')).not.toBe(executionNameFor('a-b'));
  });

  it('derives the ARN of an existing execution from the state machine ARN', () => {
    expect(executionArnFor('arn:aws:states:eu-west-1:123:stateMachine:Reconcile', 'run-1')).toBe(
      'arn:aws:states:eu-west-1:123:execution:Reconcile:run-1',
    );
  });
});
