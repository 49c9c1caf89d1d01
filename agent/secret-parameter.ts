import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';

/**
 * An EC2 host's snapshot secret, read at boot from the SSM SecureString the control plane stored for it.
 *
 * The control plane creates the parameter before launching the instance, but can only tag it with the
 * instance's ARN (which is what lets this instance, and no other, read it) once RunInstances has answered.
 * An agent that boots fast therefore sees AccessDenied (or, on a very young parameter, ParameterNotFound)
 * for a moment: those are retried with backoff. Anything else, or a refusal that lasts, fails naming the
 * parameter, because a host that cannot sign must not start posting.
 */

export class SecretParameterError extends Error {
  constructor(
    readonly parameter: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SecretParameterError';
  }
}

export interface SecretParameterOptions {
  ssm: SSMClient;
  name: string;
  /**
   * Reads before giving up on a refusal the tag will cure.
   * @default 12 (with the default delays, about three minutes)
   */
  attempts?: number;
  /** @default 1000 */
  firstDelayMs?: number;
  /** @default 30000 */
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  onRetry?: (attempt: number, reason: string, delayMs: number) => void;
}

/** What the first moments of a host legitimately look like: the tag (or the parameter) is not there yet. */
const NOT_YET = new Set(['AccessDeniedException', 'ParameterNotFound']);
/** Transient on SSM's side. */
const TRANSIENT = new Set(['ThrottlingException', 'InternalServerError', 'TooManyUpdates']);

export async function readSecretParameter(options: SecretParameterOptions): Promise<string> {
  const attempts = options.attempts ?? 12;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let delay = options.firstDelayMs ?? 1_000;
  let lastReason = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const { Parameter } = await options.ssm.send(
        new GetParameterCommand({ Name: options.name, WithDecryption: true }),
      );
      const value = Parameter?.Value?.trim();
      if (!value) {
        throw new SecretParameterError(options.name, `SSM parameter ${options.name} holds no secret`);
      }
      return value;
    } catch (error) {
      if (error instanceof SecretParameterError) throw error;
      const name = (error as { name?: string }).name ?? 'Error';
      lastReason = `${name}: ${(error as Error).message}`;
      if (!NOT_YET.has(name) && !TRANSIENT.has(name)) {
        throw new SecretParameterError(
          options.name,
          `cannot read the host secret from SSM parameter ${options.name}: ${lastReason}`,
          { cause: error },
        );
      }
      if (attempt === attempts) break;
      options.onRetry?.(attempt, lastReason, delay);
      await sleep(delay);
      delay = Math.min(delay * 2, maxDelay);
    }
  }
  throw new SecretParameterError(
    options.name,
    `cannot read the host secret from SSM parameter ${options.name} after ${attempts} attempts (${lastReason}); ` +
      `is it tagged fleetfold:instance-arn with this instance's ARN, and does the instance role allow it?`,
  );
}
