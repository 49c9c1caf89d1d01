/**
 * The pure half of the fan-out: where a host's states travel (topic shard, inbox queue), which messages its
 * subscription lets through (filter policy), what each message carries (attributes), and when a state is
 * too large to travel inline. The SNS/SQS/S3 adapter (shared/adapters/sns-state-publisher.ts), the CDK
 * construct and the agent all derive names from here, so they cannot drift apart.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.ts';
import type { InboxAddress } from './ports.ts';

export const STATE_TOPIC_BASE = 'fleetfold-states';
export const INBOX_QUEUE_PREFIX = 'fleetfold-inbox-';
export const DLQ_SUFFIX = '-dlq';
/** Too-large states are written here as `states/<hostId>/<stateVersion>.json`. */
export const STATE_PREFIX = 'states/';

/**
 * One shard per ~200 hosts, SNS's default filter-policy quota per topic: each inbox subscription carries
 * a filter policy, and a topic accepts about 200 of them before the quota must be raised.
 */
export const HOSTS_PER_SHARD = 200;
/** Receives before a state nobody could process moves to the inbox's DLQ. */
export const INBOX_MAX_RECEIVE_COUNT = 5;
/**
 * SNS and SQS take 256 KiB per message including attributes; staying at ~200 KB leaves room for the
 * attributes and for SNS's own framing, so an envelope over this goes by reference through S3.
 */
export const MAX_INLINE_ENVELOPE_BYTES = 200_000;
/** SNS PublishBatch takes at most 10 entries. */
export const PUBLISH_BATCH_SIZE = 10;

/** How many topic shards a fleet of this many hosts needs (at least 1). */
export function shardCountFor(hosts: number): number {
  if (!Number.isSafeInteger(hosts) || hosts < 0) {
    throw new ValidationError(`host count must be a non-negative integer, got ${hosts}`, { hosts });
  }
  return Math.max(1, Math.ceil(hosts / HOSTS_PER_SHARD));
}

function assertShardCount(shardCount: number): void {
  if (!Number.isSafeInteger(shardCount) || shardCount < 1) {
    throw new ValidationError(`shard count must be a positive integer, got ${shardCount}`, { shardCount });
  }
}

/**
 * A host's topic shard: a hash of its id, so every publisher and every inbox agree without a lookup table.
 * Changing the shard count moves hosts, which is why ensureInbox re-subscribes an existing inbox.
 */
export function shardOf(hostId: string, shardCount: number): number {
  assertShardCount(shardCount);
  if (shardCount === 1) return 0;
  return createHash('sha256').update(hostId).digest().readUInt32BE(0) % shardCount;
}

/**
 * The topic ARNs as a function's config receives them (STATE_TOPIC_ARNS: comma-separated, shard order).
 * Fails on an empty list or a non-SNS ARN, so a misconfigured function stops at cold start.
 */
export function parseTopicArns(value: string): string[] {
  const arns = value
    .split(',')
    .map((arn) => arn.trim())
    .filter((arn) => arn !== '');
  if (arns.length === 0) throw new ValidationError('no state topic ARNs configured', { value });
  for (const arn of arns) {
    if (!/^arn:[^:]+:sns:[^:]*:[^:]*:[A-Za-z0-9_-]+$/.test(arn)) {
      throw new ValidationError(`"${arn}" is not an SNS topic ARN`, { value });
    }
  }
  return arns;
}

/** `fleetfold-states` when there is one shard, else `fleetfold-states-<n>` for n in 0 … shardCount-1. */
export function topicName(shard: number, shardCount: number, base = STATE_TOPIC_BASE): string {
  assertShardCount(shardCount);
  if (!Number.isSafeInteger(shard) || shard < 0 || shard >= shardCount) {
    throw new ValidationError(`shard ${shard} is not in 0…${shardCount - 1}`, { shard, shardCount });
  }
  return shardCount === 1 ? base : `${base}-${shard}`;
}

export function topicNames(shardCount: number, base = STATE_TOPIC_BASE): string[] {
  assertShardCount(shardCount);
  return Array.from({ length: shardCount }, (_, shard) => topicName(shard, shardCount, base));
}

const PLAIN_QUEUE_ID = /^[a-z0-9_-]{1,60}$/;
const HASHED_TAIL = /-[0-9a-f]{16}$/;
const MAX_QUEUE_NAME = 80;

/**
 * `fleetfold-inbox-<hostId>`. SQS names allow neither "." nor more than 80 characters, both of which host
 * ids may have: such ids get a readable prefix plus 16 hex of their sha256. An id that itself looks like
 * such a name (ends in `-<16 hex>`) or like a DLQ (ends in `-dlq`) is hashed too, so a plain name can never
 * equal another host's hashed name or DLQ.
 */
export function inboxQueueName(hostId: string): string {
  if (hostId.length === 0) throw new ValidationError('host id is empty', { hostId });
  if (PLAIN_QUEUE_ID.test(hostId) && !HASHED_TAIL.test(hostId) && !hostId.endsWith(DLQ_SUFFIX)) {
    return `${INBOX_QUEUE_PREFIX}${hostId}`;
  }
  const digest = createHash('sha256').update(hostId).digest('hex').slice(0, 16);
  const room = MAX_QUEUE_NAME - INBOX_QUEUE_PREFIX.length - DLQ_SUFFIX.length - digest.length - 1;
  const readable = hostId.replace(/[^a-z0-9_-]/g, '_').slice(0, room);
  return `${INBOX_QUEUE_PREFIX}${readable}-${digest}`;
}

export function inboxDlqName(hostId: string): string {
  return `${inboxQueueName(hostId)}${DLQ_SUFFIX}`;
}

/** The message attributes SNS filters on. `hostId` is absent on broadcasts: that is how they are told apart. */
export type StateMessageAttributes = { hostId?: string; group: string; role: string };

/** A per-host state: addressed by host id; group and role ride along for tracing and metrics. */
export function hostMessageAttributes(state: {
  hostId: string;
  group: string;
  hostType: string;
}): StateMessageAttributes {
  // DesiredHostState names no roles; its host type is the role hosts register with (roles: [hostType]).
  return { hostId: state.hostId, group: state.group, role: state.hostType };
}

export function broadcastMessageAttributes(target: { group: string; role: string }): StateMessageAttributes {
  return { group: target.group, role: target.role };
}

/** The SDK's shape of message attributes (SNS Publish / PublishBatch entries). */
export function toSnsAttributes(
  attributes: StateMessageAttributes,
): Record<string, { DataType: 'String'; StringValue: string }> {
  const result: Record<string, { DataType: 'String'; StringValue: string }> = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) result[name] = { DataType: 'String', StringValue: value };
  }
  return result;
}

/**
 * The inbox subscription's filter (scope MessageAttributes): a message for this host, or a broadcast to its
 * group and one of its roles. A broadcast is recognised by having no `hostId`: per-host messages also carry
 * group and role, and without that condition they would reach every host sharing them.
 */
export function inboxFilterPolicy(address: InboxAddress): Record<string, unknown> {
  const roles = [...new Set(address.roles)].sort();
  if (roles.length === 0) return { hostId: [address.hostId] };
  return {
    $or: [{ hostId: [address.hostId] }, { group: [address.group], role: roles, hostId: [{ exists: false }] }],
  };
}

/** SNS counts a policy's complexity as the sum over `$or` branches of the product of value counts. */
export const MAX_FILTER_COMBINATIONS = 150;

export function filterPolicyCombinations(policy: Record<string, unknown>): number {
  const branches = Array.isArray(policy.$or) ? (policy.$or as Record<string, unknown>[]) : [policy];
  return branches.reduce(
    (sum, branch) =>
      sum +
      Object.values(branch).reduce<number>(
        (product, values) => product * (Array.isArray(values) ? values.length : 1),
        1,
      ),
    0,
  );
}

/** Only this topic shard may send to the inbox (AWS checks it; the emulator ignores queue policies). */
export function inboxQueuePolicy(queueArn: string, topicArn: string): Record<string, unknown> {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'StateTopicOnly',
        Effect: 'Allow',
        Principal: { Service: 'sns.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: queueArn,
        Condition: { ArnEquals: { 'aws:SourceArn': topicArn } },
      },
    ],
  };
}

/** The queue in the same partition, region and account as the topic (SNS and SQS ARNs line up). */
export function queueArnBesideTopic(topicArn: string, queueName: string): string {
  const parts = topicArn.split(':');
  if (parts.length < 6 || parts[0] !== 'arn' || parts[2] !== 'sns') {
    throw new ValidationError(`"${topicArn}" is not an SNS topic ARN`, { topicArn });
  }
  return `arn:${parts[1]}:sqs:${parts[3]}:${parts[4]}:${queueName}`;
}

export function stateObjectKey(hostId: string, stateVersion: number): string {
  return `${STATE_PREFIX}${hostId}/${stateVersion}.json`;
}

/** Inline when the envelope (with its attributes) fits comfortably in one message, else by reference. */
export function travelsInline(
  envelopeJson: string,
  attributes: StateMessageAttributes,
  limit = MAX_INLINE_ENVELOPE_BYTES,
): boolean {
  let size = Buffer.byteLength(envelopeJson);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) size += Buffer.byteLength(name) + 'String'.length + Buffer.byteLength(value);
  }
  return size <= limit;
}

/** Splits into runs of at most `size`, keeping order. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`chunk size must be ≥ 1, got ${size}`);
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/** Groups items by topic shard of their host, shards in ascending order. */
export function byShard<T extends { hostId: string }>(
  items: readonly T[],
  shardCount: number,
): { shard: number; items: T[] }[] {
  const shards = new Map<number, T[]>();
  for (const item of items) {
    const shard = shardOf(item.hostId, shardCount);
    const list = shards.get(shard) ?? [];
    list.push(item);
    shards.set(shard, list);
  }
  return [...shards.entries()].sort(([a], [b]) => a - b).map(([shard, list]) => ({ shard, items: list }));
}
