import { S3Client } from '@aws-sdk/client-s3';
import { PublishBatchCommand, type PublishBatchCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { SnsStatePublisher, StatePublishError } from '../shared/adapters/sns-state-publisher.ts';
import { ValidationError } from '../shared/errors.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import type { StateSigner } from '../shared/groups/ports.ts';

const sns = mockClient(SNSClient);
const topicArn = 'arn:aws:sns:eu-west-1:123456789012:fleetfold-states';

afterEach(() => {
  sns.reset();
});

/** A test double of the StateSigner port: what it signs does not matter here, only that it is called. */
const signer: StateSigner = { keyId: 'test', sign: async (m) => Buffer.from(m.subarray(0, 8)) };

function publisher(topicArns = [topicArn]) {
  return new SnsStatePublisher({
    sns: new SNSClient({ region: 'eu-west-1' }),
    sqs: new SQSClient({ region: 'eu-west-1' }),
    s3: new S3Client({ region: 'eu-west-1' }),
    bucket: 'b',
    signer,
    topicArns,
  });
}

function state(hostId: string): DesiredHostState {
  return {
    hostId,
    group: 'g',
    hostType: 'media',
    stateVersion: 1,
    services: {},
    config: {},
    mode: 'running',
  };
}

function hostsIn(input: PublishBatchCommandInput): string[] {
  return (input.PublishBatchRequestEntries ?? []).map((e) => e.MessageAttributes?.hostId?.StringValue ?? '');
}

describe('SnsStatePublisher.publish', () => {
  it('sends at most 10 entries per PublishBatch, each host once', async () => {
    sns.on(PublishBatchCommand).resolves({ Successful: [], Failed: [] });
    const hosts = Array.from({ length: 23 }, (_, i) => `h${i}`);

    await publisher().publish(hosts.map(state));

    const calls = sns.commandCalls(PublishBatchCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.PublishBatchRequestEntries?.length)).toEqual([10, 10, 3]);
    expect(calls.flatMap(hostsIn).sort()).toEqual([...hosts].sort());
    expect(calls.every((c) => c.TopicArn === topicArn)).toBe(true);
  });

  it('retries only the refused entries once, and succeeds if the retry goes through', async () => {
    sns
      .on(PublishBatchCommand)
      .resolvesOnce({ Failed: [{ Id: 'e1', Code: 'Throttled', SenderFault: false }] })
      .resolves({ Failed: [] });

    await publisher().publish(['a', 'b', 'c'].map(state));

    const calls = sns.commandCalls(PublishBatchCommand).map((c) => c.args[0].input);
    expect(calls).toHaveLength(2);
    expect(hostsIn(calls[1] as PublishBatchCommandInput)).toEqual(['b']);
  });

  it('fails naming the hosts refused twice', async () => {
    sns.on(PublishBatchCommand).callsFake((input: PublishBatchCommandInput) => ({
      Failed: (input.PublishBatchRequestEntries ?? [])
        .filter((e) => e.MessageAttributes?.hostId?.StringValue !== 'a')
        .map((e) => ({ Id: e.Id, Code: 'InternalError', Message: 'boom', SenderFault: false })),
    }));

    const failure = await publisher()
      .publish(['a', 'b', 'c'].map(state))
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(StatePublishError);
    expect((failure as StatePublishError).hostIds).toEqual(['b', 'c']);
    expect((failure as Error).message).toMatch(/b, c/);
    expect(sns.commandCalls(PublishBatchCommand)).toHaveLength(2);
  });

  it('sends nothing for no states', async () => {
    await publisher().publish([]);
    expect(sns.commandCalls(PublishBatchCommand)).toHaveLength(0);
  });

  it('rejects being made without a topic', () => {
    expect(() => publisher([])).toThrow(ValidationError);
  });
});
