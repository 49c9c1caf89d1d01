import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import {
  byShard,
  chunk,
  filterPolicyCombinations,
  HOSTS_PER_SHARD,
  hostMessageAttributes,
  inboxDlqName,
  inboxFilterPolicy,
  inboxQueueName,
  inboxQueuePolicy,
  parseTopicArns,
  queueArnBesideTopic,
  shardCountFor,
  shardOf,
  stateObjectKey,
  topicName,
  topicNames,
  toSnsAttributes,
  travelsInline,
} from '../shared/groups/fanout.ts';

/** Host ids as the registration schema allows them. */
const hostId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/);
const SQS_NAME = /^[A-Za-z0-9_-]{1,80}$/;

describe('topic shards', () => {
  it('needs one shard per 200 hosts, and at least one', () => {
    expect(shardCountFor(0)).toBe(1);
    expect(shardCountFor(HOSTS_PER_SHARD)).toBe(1);
    expect(shardCountFor(HOSTS_PER_SHARD + 1)).toBe(2);
    expect(shardCountFor(1000)).toBe(5);
    expect(() => shardCountFor(-1)).toThrow(ValidationError);
  });

  it('puts a host on the same shard every time, within range', () => {
    fc.assert(
      fc.property(hostId, fc.integer({ min: 1, max: 64 }), (id, count) => {
        const shard = shardOf(id, count);
        return shard === shardOf(id, count) && shard >= 0 && shard < count && Number.isInteger(shard);
      }),
    );
  });

  it('spreads hosts over the shards roughly evenly', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i += 1)
      counts[shardOf(`host-${i}`, 4)] = (counts[shardOf(`host-${i}`, 4)] ?? 0) + 1;
    for (const count of counts) expect(count).toBeGreaterThan(800);
  });

  it('names one topic fleetfold-states, and several fleetfold-states-<n>', () => {
    expect(topicNames(1)).toEqual(['fleetfold-states']);
    expect(topicNames(3)).toEqual(['fleetfold-states-0', 'fleetfold-states-1', 'fleetfold-states-2']);
    expect(topicName(1, 2, 'x')).toBe('x-1');
  });

  it('reads the configured topic ARNs in shard order', () => {
    const a = 'arn:aws:sns:eu-west-1:123456789012:fleetfold-states-0';
    const b = 'arn:aws:sns:eu-west-1:123456789012:fleetfold-states-1';
    expect(parseTopicArns(` ${a}, ${b} `)).toEqual([a, b]);
  });

  it('rejects an empty topic list and ARNs that are not SNS topics', () => {
    expect(() => parseTopicArns(' , ')).toThrow(ValidationError);
    expect(() => parseTopicArns('arn:aws:sqs:eu-west-1:1:q')).toThrow(ValidationError);
  });

  it('rejects a shard count below one and a shard out of range', () => {
    expect(() => shardOf('h', 0)).toThrow(ValidationError);
    expect(() => topicName(2, 2)).toThrow(ValidationError);
    expect(() => topicNames(1.5)).toThrow(ValidationError);
  });

  it('groups by shard, keeping every item once and the order within a shard', () => {
    fc.assert(
      fc.property(fc.array(hostId, { maxLength: 60 }), fc.integer({ min: 1, max: 8 }), (ids, count) => {
        const items = ids.map((id, index) => ({ hostId: id, index }));
        const groups = byShard(items, count);
        const flattened = groups.flatMap((g) => g.items);
        expect(flattened).toHaveLength(items.length);
        for (const group of groups) {
          expect(group.items.every((item) => shardOf(item.hostId, count) === group.shard)).toBe(true);
          const indexes = group.items.map((i) => i.index);
          expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
        }
      }),
    );
  });

  it('chunks into runs of at most the size, losing nothing', () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), fc.integer({ min: 1, max: 12 }), (items, size) => {
        const chunks = chunk(items, size);
        return (
          chunks.every((c) => c.length >= 1 && c.length <= size) && chunks.flat().join() === items.join()
        );
      }),
    );
    expect(() => chunk([1], 0)).toThrow(RangeError);
  });
});

describe('inbox queue names', () => {
  it('are fleetfold-inbox-<hostId> for ordinary ids', () => {
    expect(inboxQueueName('cr-1')).toBe('fleetfold-inbox-cr-1');
    expect(inboxDlqName('cr-1')).toBe('fleetfold-inbox-cr-1-dlq');
  });

  it('are valid SQS names for every host id, DLQ included', () => {
    fc.assert(
      fc.property(hostId, (id) => SQS_NAME.test(inboxQueueName(id)) && SQS_NAME.test(inboxDlqName(id))),
    );
  });

  it('never give two hosts the same queue, nor one host the DLQ of another', () => {
    const tricky = [
      'a.b',
      'a_b',
      'a-dlq',
      'a',
      `${'x'.repeat(64)}`,
      `${'x'.repeat(63)}y`,
      inboxQueueName('a.b').slice('fleetfold-inbox-'.length),
    ];
    fc.assert(
      fc.property(fc.uniqueArray(hostId, { maxLength: 30 }), (random) => {
        const ids = [...new Set([...tricky, ...random])];
        const names = ids.flatMap((id) => [inboxQueueName(id), inboxDlqName(id)]);
        return new Set(names).size === names.length;
      }),
    );
  });

  it('rejects an empty host id', () => {
    expect(() => inboxQueueName('')).toThrow(ValidationError);
  });
});

describe('filter policies and message attributes', () => {
  it('let a host receive its own states and broadcasts to its group and roles, not per-host states of peers', () => {
    const policy = inboxFilterPolicy({ hostId: 'cr-1', group: 'demo', roles: ['lb', 'call-router', 'lb'] });
    expect(policy).toEqual({
      $or: [
        { hostId: ['cr-1'] },
        { group: ['demo'], role: ['call-router', 'lb'], hostId: [{ exists: false }] },
      ],
    });
    expect(filterPolicyCombinations(policy)).toBe(3);
  });

  it('address only the host itself when it has no roles', () => {
    expect(inboxFilterPolicy({ hostId: 'cr-1', group: 'demo', roles: [] })).toEqual({ hostId: ['cr-1'] });
  });

  it('carry host id, group and host type as role on per-host messages, all as strings', () => {
    const attributes = hostMessageAttributes({ hostId: 'cr-1', group: 'demo', hostType: 'call-router' });
    expect(toSnsAttributes(attributes)).toEqual({
      hostId: { DataType: 'String', StringValue: 'cr-1' },
      group: { DataType: 'String', StringValue: 'demo' },
      role: { DataType: 'String', StringValue: 'call-router' },
    });
    expect(toSnsAttributes({ group: 'demo', role: 'lb' })).not.toHaveProperty('hostId');
  });

  it('allow only the topic to send to an inbox', () => {
    const topicArn = 'arn:aws:sns:eu-west-1:123456789012:fleetfold-states';
    const queueArn = queueArnBesideTopic(topicArn, 'fleetfold-inbox-cr-1');
    expect(queueArn).toBe('arn:aws:sqs:eu-west-1:123456789012:fleetfold-inbox-cr-1');
    expect(inboxQueuePolicy(queueArn, topicArn)).toMatchObject({
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'sns.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: queueArn,
          Condition: { ArnEquals: { 'aws:SourceArn': topicArn } },
        },
      ],
    });
    expect(() => queueArnBesideTopic('arn:aws:sqs:eu-west-1:1:q', 'x')).toThrow(ValidationError);
  });
});

describe('size decision', () => {
  it('keeps an envelope inline up to the limit, counting its attributes, and refers beyond it', () => {
    const attributes = { hostId: 'h', group: 'g', role: 'r' };
    const overhead = 'hostIdStringh'.length + 'groupStringg'.length + 'roleStringr'.length;
    expect(travelsInline('x'.repeat(1000 - overhead), attributes, 1000)).toBe(true);
    expect(travelsInline('x'.repeat(1001 - overhead), attributes, 1000)).toBe(false);
    expect(travelsInline('é'.repeat(500), { group: 'g', role: 'r' }, 1000)).toBe(false);
  });

  it('stores referenced states at states/<hostId>/<stateVersion>.json', () => {
    expect(stateObjectKey('cr-1', 12)).toBe('states/cr-1/12.json');
  });
});
