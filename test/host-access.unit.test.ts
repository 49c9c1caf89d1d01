import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqsActionOf } from '../infra/local/sqs-guard.ts';
import {
  HOST_INBOX_ACTIONS,
  INSTANCE_ARN_TAG,
  isAllowed,
  ownInboxStatement,
  ownStateObjectsStatement,
  type PolicyStatementJson,
  SOURCE_INSTANCE_ARN,
} from '../shared/groups/host-access.ts';

const INBOXES = 'arn:aws:sqs:us-east-1:000000000000:fleetfold-inbox-*';
const inbox = ownInboxStatement(INBOXES);
const instance = (id: string) => `arn:aws:ec2:us-east-1:000000000000:instance/${id}`;
const instanceId = fc.stringMatching(/^i-[0-9a-f]{8,17}$/);

describe('the host statements', () => {
  it('condition the inbox on the queue tag naming the calling instance', () => {
    expect(inbox.Condition).toEqual({
      StringEquals: { [`aws:ResourceTag/${INSTANCE_ARN_TAG}`]: SOURCE_INSTANCE_ARN },
    });
    expect(ownStateObjectsStatement('arn:aws:s3:::b/states/*').Condition).toEqual({
      StringEquals: { [`s3:ExistingObjectTag/${INSTANCE_ARN_TAG}`]: SOURCE_INSTANCE_ARN },
    });
  });

  it('allow an inbox action exactly when the queue is tagged with the caller', () => {
    fc.assert(
      fc.property(
        instanceId,
        instanceId,
        fc.constantFrom(...HOST_INBOX_ACTIONS),
        fc.stringMatching(/^[a-z0-9-]{1,20}$/),
        (caller, owner, action, host) => {
          const allowed = isAllowed([inbox], {
            action,
            resource: `arn:aws:sqs:us-east-1:000000000000:fleetfold-inbox-${host}`,
            context: {
              'ec2:SourceInstanceARN': instance(caller),
              [`aws:ResourceTag/${INSTANCE_ARN_TAG}`]: instance(owner),
            },
          });
          expect(allowed).toBe(caller === owner);
        },
      ),
    );
  });

  it('refuse an untagged queue, a queue outside the prefix and an action not granted', () => {
    const context = { 'ec2:SourceInstanceARN': instance('i-0a') };
    const own = { ...context, [`aws:ResourceTag/${INSTANCE_ARN_TAG}`]: instance('i-0a') };
    const queue = 'arn:aws:sqs:us-east-1:000000000000:fleetfold-inbox-h1';
    expect(isAllowed([inbox], { action: 'sqs:ReceiveMessage', resource: queue, context })).toBe(false);
    expect(isAllowed([inbox], { action: 'sqs:ReceiveMessage', resource: queue, context: own })).toBe(true);
    expect(
      isAllowed([inbox], {
        action: 'sqs:ReceiveMessage',
        resource: 'arn:aws:sqs:us-east-1:000000000000:fleetfold-ingest',
        context: own,
      }),
    ).toBe(false);
    for (const action of ['sqs:PurgeQueue', 'sqs:SendMessage', 'sqs:DeleteQueue', 'sqs:TagQueue']) {
      expect(isAllowed([inbox], { action, resource: queue, context: own })).toBe(false);
    }
    // A caller without instance credentials (no ec2:SourceInstanceARN) matches nothing, even an untagged queue.
    expect(isAllowed([inbox], { action: 'sqs:ReceiveMessage', resource: queue, context: {} })).toBe(false);
  });

  it('match actions without regard to case, and let an explicit Deny win', () => {
    const context = {
      'ec2:SourceInstanceARN': instance('i-0a'),
      [`aws:ResourceTag/${INSTANCE_ARN_TAG}`]: instance('i-0a'),
    };
    const resource = 'arn:aws:sqs:us-east-1:000000000000:fleetfold-inbox-h1';
    expect(isAllowed([inbox], { action: 'SQS:receivemessage', resource, context })).toBe(true);
    const deny: PolicyStatementJson = { Sid: 'No', Effect: 'Deny', Action: ['sqs:*'], Resource: ['*'] };
    expect(isAllowed([inbox, deny], { action: 'sqs:ReceiveMessage', resource, context })).toBe(false);
  });

  it('authorize the batch operations as their single forms, as SQS does', () => {
    expect(sqsActionOf('DeleteMessageBatch')).toBe('sqs:DeleteMessage');
    expect(sqsActionOf('ChangeMessageVisibilityBatch')).toBe('sqs:ChangeMessageVisibility');
    expect(sqsActionOf('SendMessageBatch')).toBe('sqs:SendMessage');
    expect(sqsActionOf('ReceiveMessage')).toBe('sqs:ReceiveMessage');
  });
});
