import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';

/** The package does not export its JSON type. */
type JSONValue = Parameters<StateMachine['run']>[0];

/** An in-process Lambda handler, as the state machine's tasks invoke it. */
export type LocalFunction = (payload: unknown) => Promise<unknown>;

export interface LocalRunOptions {
  /** Execution name, visible to the definition as `$$.Execution.Name`. */
  name: string;
  /** Milliseconds each Wait state pauses instead of its Seconds/SecondsPath (e.g. 0 in tests). */
  waitMs?: number;
  /** Milliseconds before each retry instead of the definition's backoff (e.g. 0 in tests). */
  retryMs?: number;
}

export interface LocalExecution {
  name: string;
  result: Promise<unknown>;
  abort(): void;
}

/**
 * Runs a synthesized state machine definition in this process. Every `lambda:invoke` task calls `handler`
 * with the task's Payload and hands back `{ Payload }`, as the Lambda integration does, so the definition's
 * ResultSelectors (`$.Payload.…`) work unchanged.
 */
export class LocalStateMachine {
  readonly #machine: StateMachine;
  readonly #taskNames: string[];
  readonly #waitNames: string[];

  constructor(
    definition: StateMachineDefinition,
    private readonly handler: LocalFunction,
  ) {
    this.#machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
    this.#taskNames = statesOfType(definition, 'Task');
    this.#waitNames = statesOfType(definition, 'Wait');
  }

  run(input: Record<string, unknown>, options: LocalRunOptions): LocalExecution {
    const taskResourceLocalHandlers = Object.fromEntries(
      this.#taskNames.map((name) => [
        name,
        async (taskInput: JSONValue) => {
          const payload = (taskInput as { Payload?: unknown }).Payload;
          return { Payload: (await this.handler(payload)) as JSONValue } as JSONValue;
        },
      ]),
    );
    const execution = this.#machine.run(input as JSONValue, {
      overrides: {
        taskResourceLocalHandlers,
        ...(options.waitMs === undefined
          ? {}
          : {
              waitTimeOverrides: Object.fromEntries(
                this.#waitNames.map((name) => [name, options.waitMs as number]),
              ),
            }),
        ...(options.retryMs === undefined
          ? {}
          : {
              retryIntervalOverrides: Object.fromEntries(
                this.#taskNames.map((name) => [name, options.retryMs as number]),
              ),
            }),
      },
      context: {
        Execution: { Name: options.name, Input: input as JSONValue, StartTime: new Date().toISOString() },
      },
    });
    return { name: options.name, result: execution.result, abort: execution.abort };
  }
}

/** Names of every state of a type, nested Map and Parallel states included (overrides address them by name). */
export function statesOfType(definition: StateMachineDefinition, type: string): string[] {
  const names: string[] = [];
  const visit = (states: Record<string, unknown>) => {
    for (const [name, state] of Object.entries(states)) {
      const node = state as {
        Type: string;
        ItemProcessor?: { States: Record<string, unknown> };
        Iterator?: { States: Record<string, unknown> };
        Branches?: { States: Record<string, unknown> }[];
      };
      if (node.Type === type) names.push(name);
      const nested = node.ItemProcessor ?? node.Iterator;
      if (nested) visit(nested.States);
      for (const branch of node.Branches ?? []) visit(branch.States);
    }
  };
  visit(definition.States as Record<string, unknown>);
  return names;
}
