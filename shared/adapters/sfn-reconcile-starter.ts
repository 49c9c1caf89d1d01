import { createHash } from 'node:crypto';
import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { ReconcileStarter } from '../groups/ports.ts';

/** Step Functions execution names: at most 80 characters of letters, digits, '-' and '_'. */
const MAX_NAME = 80;

/**
 * The execution name for a dedupe key: Step Functions refuses a second execution of the same name (for 90
 * days), which is exactly "a run already going for the same trigger is not started twice". Keys that need
 * sanitizing or shortening get a hash suffix so two different keys never collapse into one name.
 */
export function executionNameFor(dedupeKey: string): string {
  const clean = dedupeKey.replace(/[^A-Za-z0-9_-]/g, '-');
  if (clean === dedupeKey && clean.length <= MAX_NAME && clean.length > 0) return clean;
  const hash = createHash('sha256').update(dedupeKey).digest('hex').slice(0, 12);
  return `${clean.slice(0, MAX_NAME - hash.length - 1)}-${hash}`;
}

export interface SfnReconcileStarterOptions {
  client: SFNClient;
  stateMachineArn: string;
}

/** Starts reconcile runs on AWS Step Functions, one per dedupe key. */
export class SfnReconcileStarter implements ReconcileStarter {
  constructor(private readonly options: SfnReconcileStarterOptions) {}

  async start(request: { group: string; reason: string; rolloutId?: string; dedupeKey: string }) {
    const name = executionNameFor(request.dedupeKey);
    const input = JSON.stringify({
      group: request.group,
      reason: request.reason,
      ...(request.rolloutId === undefined ? {} : { rolloutId: request.rolloutId }),
    });
    try {
      const started = await this.options.client.send(
        new StartExecutionCommand({ stateMachineArn: this.options.stateMachineArn, name, input }),
      );
      if (!started.executionArn) throw new Error(`StartExecution ${name} returned no execution ARN`);
      return { executionId: started.executionArn };
    } catch (error) {
      if (!(error instanceof ExecutionAlreadyExists)) throw error;
      // Same name and same input is an idempotent success on AWS; a different input lands here. Either way
      // the run for this trigger exists: hand back its ARN.
      return { executionId: executionArnFor(this.options.stateMachineArn, name) };
    }
  }
}

/** arn:…:stateMachine:<machine> → arn:…:execution:<machine>:<name> */
export function executionArnFor(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}
