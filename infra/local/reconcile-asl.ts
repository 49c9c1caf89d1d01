import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { ReconcileStateMachine } from '../constructs/reconcile-state-machine.ts';

/** Stands in for the reconcile function's ARN: locally every task of the machine is overridden anyway. */
export const RECONCILE_FUNCTION_PLACEHOLDER_ARN =
  'arn:aws:lambda:us-east-1:000000000000:function:fleetfold-reconcile';

const PSEUDO_PARAMETERS: Readonly<Record<string, string>> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '000000000000',
  'AWS::URLSuffix': 'amazonaws.com',
};

/** How the logical ids a definition refers to resolve: to the placeholder ARN of what they stand for. */
export type ReferenceResolver = (logicalId: string, attribute: string | undefined) => string;

/**
 * Turns a synthesized `DefinitionString` (an `Fn::Join` over strings, `Ref`s and `Fn::GetAtt`s) into the
 * ASL text. A reference the resolver does not know is an error: silently leaving it would run another machine.
 */
export function resolveIntrinsics(value: unknown, resolve: ReferenceResolver): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const node = value as Record<string, unknown>;
    if ('Fn::Join' in node) {
      const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
      return parts.map((part) => resolveIntrinsics(part, resolve)).join(separator);
    }
    if ('Ref' in node) {
      const name = node.Ref as string;
      return PSEUDO_PARAMETERS[name] ?? resolve(name, undefined);
    }
    if ('Fn::GetAtt' in node) {
      const [logicalId, attribute] = node['Fn::GetAtt'] as [string, string];
      return resolve(logicalId, attribute);
    }
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)} in a state machine definition`);
}

/** The ASL of a synthesized state machine, references resolved. */
export function definitionOf(
  stateMachine: sfn.StateMachine,
  resolve: ReferenceResolver,
): StateMachineDefinition {
  const cfn = stateMachine.node.defaultChild as sfn.CfnStateMachine;
  const raw = Stack.of(stateMachine).resolve(cfn.definitionString);
  return JSON.parse(resolveIntrinsics(raw, resolve)) as StateMachineDefinition;
}

let cached: StateMachineDefinition | undefined;

/**
 * The reconcile state machine exactly as CDK synthesizes it, from a small stack holding only the construct
 * and the function imported by ARN (no bundling, so this takes milliseconds, not seconds). The test suite
 * checks it equals the definition in the full FleetfoldStack template.
 */
export function reconcileAsl(): StateMachineDefinition {
  if (!cached) {
    const stack = new Stack(new App(), 'ReconcileAsl');
    const machine = new ReconcileStateMachine(stack, 'Reconcile', {
      reconcileFunction: lambda.Function.fromFunctionArn(
        stack,
        'Function',
        RECONCILE_FUNCTION_PLACEHOLDER_ARN,
      ),
    });
    cached = definitionOf(machine.stateMachine, (logicalId) => {
      throw new Error(`unexpected reference to ${logicalId} in the reconcile state machine`);
    });
  }
  return structuredClone(cached);
}
