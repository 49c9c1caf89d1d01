/**
 * Which operator commands a rollout accepts in which status. Pure: the service applies the answer.
 */
import { ConflictError } from '../errors.ts';
import { isFinalRolloutStatus } from './group-state.ts';
import type { Rollout, RolloutStatus } from './model.ts';

export type RolloutCommand = 'pause' | 'resume' | 'abort';

export const ROLLOUT_COMMANDS: readonly RolloutCommand[] = ['pause', 'resume', 'abort'];

/** The status a command moves a rollout to, or a ConflictError saying from where the command is allowed. */
export function nextRolloutStatus(
  rollout: Pick<Rollout, 'id' | 'status'>,
  command: RolloutCommand,
): RolloutStatus {
  const { id, status } = rollout;
  const refuse = (allowed: string) =>
    new ConflictError(`rollout ${id} is ${status}: ${allowed}`, {
      rolloutId: id,
      rolloutStatus: status,
      command,
    });
  switch (command) {
    case 'pause':
      if (status === 'running' || status === 'pending') return 'paused';
      throw refuse('only a pending or running rollout can be paused');
    case 'resume':
      if (status === 'paused') return 'running';
      throw refuse('only a paused rollout can be resumed');
    case 'abort':
      if (!isFinalRolloutStatus(status)) return 'aborted';
      throw refuse('it has finished, so there is nothing left to abort');
  }
}
