/**
 * What a host's own credentials may reach, as IAM policy statements in plain JSON: the CDK host role states
 * exactly these (infra/constructs/state-fanout.ts), and local mode's SQS guard evaluates the same ones
 * (infra/local/sqs-guard.ts), so the rule tested locally is the rule deployed.
 *
 * Every host shares one instance role, but IAM still tells them apart: the credentials EC2 hands an instance
 * carry `ec2:SourceInstanceARN`, and `aws:userid` reads `<roleId>:<instanceId>`. A per-host resource is
 * tagged with the ARN of the one instance it belongs to once that instance exists (the reconcile's bind step,
 * right after RunInstances), and the statement allows it only where the tag equals the caller's instance.
 */
import { COST_ALLOCATION_TAGS } from '../cost/tags.ts';
import { SECRET_PARAMETER_TAGS } from './host-provisioning.ts';

/** An IAM policy variable: the ARN of the instance whose role credentials signed the request. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: IAM's ${…} syntax, not a JavaScript template
export const SOURCE_INSTANCE_ARN = '${ec2:SourceInstanceARN}';

/** The tag naming the instance a per-host resource belongs to: on secret parameters, inboxes, large states. */
export const INSTANCE_ARN_TAG = SECRET_PARAMETER_TAGS.instanceArn;

/** The inbox's SNS subscription, so a later ensureInbox finds and updates it. */
export const SUBSCRIPTION_TAG = 'fleetfold:subscription';
/** Every tag key the control plane writes on an inbox, and on a large-state object: its IAM allows no other. */
export const INBOX_TAG_KEYS = [SUBSCRIPTION_TAG, INSTANCE_ARN_TAG, ...Object.keys(COST_ALLOCATION_TAGS)];
export const STATE_OBJECT_TAG_KEYS = [INSTANCE_ARN_TAG, ...Object.keys(COST_ALLOCATION_TAGS)];

/** What an agent does with its inbox (DeleteMessageBatch and ChangeMessageVisibilityBatch are authorized as these). */
export const HOST_INBOX_ACTIONS = [
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:GetQueueUrl',
  'sqs:GetQueueAttributes',
] as const;

export type ConditionOperator = 'StringEquals' | 'StringLike';

export interface PolicyStatementJson {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Action: string[];
  Resource: string[];
  Condition?: Partial<Record<ConditionOperator, Record<string, string>>>;
}

/**
 * SQS evaluates `aws:ResourceTag/<key>` on every action against a queue (its ABAC, IAM policies only), so
 * host A's credentials cannot receive, delete or even look up host B's inbox.
 */
export function ownInboxStatement(inboxArnPattern: string): PolicyStatementJson {
  return {
    Sid: 'ReceiveOwnInbox',
    Effect: 'Allow',
    Action: [...HOST_INBOX_ACTIONS],
    Resource: [inboxArnPattern],
    Condition: { StringEquals: { [`aws:ResourceTag/${INSTANCE_ARN_TAG}`]: SOURCE_INSTANCE_ARN } },
  };
}

/** S3 evaluates `s3:ExistingObjectTag/<key>` on GetObject: a host reads only the large states written for it. */
export function ownStateObjectsStatement(stateObjectsArnPattern: string): PolicyStatementJson {
  return {
    Sid: 'ReadOwnLargeStates',
    Effect: 'Allow',
    Action: ['s3:GetObject'],
    Resource: [stateObjectsArnPattern],
    Condition: { StringEquals: { [`s3:ExistingObjectTag/${INSTANCE_ARN_TAG}`]: SOURCE_INSTANCE_ARN } },
  };
}

export function instanceArn(instanceArnPrefix: string, instanceId: string): string {
  return `${instanceArnPrefix}${instanceId}`;
}

export interface AuthorizationRequest {
  /** `service:Action`, e.g. `sqs:ReceiveMessage`. */
  action: string;
  resource: string;
  /** Request context: `ec2:SourceInstanceARN`, `aws:ResourceTag/<key>` … (absent keys are absent). */
  context: Readonly<Record<string, string | undefined>>;
}

/**
 * IAM's verdict for identity-based statements, for the subset used here: an explicit Deny wins, else an
 * Allow whose action, resource and every condition match, else the implicit deny. Actions match without
 * regard to case, resources with it; `*` and `?` are wildcards in both; `${key}` in a condition value is
 * replaced from the context, and a missing key (or variable) fails its condition, as in IAM.
 */
export function isAllowed(
  statements: readonly PolicyStatementJson[],
  request: AuthorizationRequest,
): boolean {
  const applies = (statement: PolicyStatementJson) =>
    statement.Action.some((pattern) => wildcard(pattern, 'i').test(request.action)) &&
    statement.Resource.some((pattern) => wildcard(pattern, '').test(request.resource)) &&
    conditionsHold(statement, request.context);
  if (statements.some((s) => s.Effect === 'Deny' && applies(s))) return false;
  return statements.some((s) => s.Effect === 'Allow' && applies(s));
}

function conditionsHold(statement: PolicyStatementJson, context: AuthorizationRequest['context']): boolean {
  for (const [operator, entries] of Object.entries(statement.Condition ?? {})) {
    for (const [key, rawExpected] of Object.entries(entries ?? {})) {
      const actual = context[key];
      const expected = substitute(rawExpected, context);
      if (actual === undefined || expected === undefined) return false;
      if (operator === 'StringEquals' && actual !== expected) return false;
      if (operator === 'StringLike' && !wildcard(expected, '').test(actual)) return false;
      if (operator !== 'StringEquals' && operator !== 'StringLike') {
        throw new Error(`condition operator ${operator} is not supported here`);
      }
    }
  }
  return true;
}

function substitute(value: string, context: AuthorizationRequest['context']): string | undefined {
  let missing = false;
  const replaced = value.replace(/\$\{([^}]+)\}/g, (_, key: string) => {
    const found = context[key];
    if (found === undefined) missing = true;
    return found ?? '';
  });
  return missing ? undefined : replaced;
}

function wildcard(pattern: string, flags: string): RegExp {
  const body = [...pattern]
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, `s${flags}`);
}
