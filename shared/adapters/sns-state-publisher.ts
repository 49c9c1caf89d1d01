import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  ListSubscriptionsByTopicCommand,
  PublishBatchCommand,
  type PublishBatchRequestEntry,
  PublishCommand,
  SetSubscriptionAttributesCommand,
  type SNSClient,
  SubscribeCommand,
  UnsubscribeCommand,
} from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  SetQueueAttributesCommand,
  type SQSClient,
  TagQueueCommand,
} from '@aws-sdk/client-sqs';
import { COST_ALLOCATION_TAGS } from '../cost/tags.ts';
import { ValidationError } from '../errors.ts';
import { type BroadcastTarget, signBroadcast } from '../groups/broadcast.ts';
import {
  broadcastMessageAttributes,
  byShard,
  chunk,
  filterPolicyCombinations,
  hostMessageAttributes,
  INBOX_MAX_RECEIVE_COUNT,
  inboxDlqName,
  inboxFilterPolicy,
  inboxQueueName,
  inboxQueuePolicy,
  MAX_FILTER_COMBINATIONS,
  MAX_INLINE_ENVELOPE_BYTES,
  PUBLISH_BATCH_SIZE,
  queueArnBesideTopic,
  type StateMessageAttributes,
  shardOf,
  stateObjectKey,
  toSnsAttributes,
  travelsInline,
} from '../groups/fanout.ts';
import { INSTANCE_ARN_TAG, instanceArn, SUBSCRIPTION_TAG } from '../groups/host-access.ts';
import type { DesiredHostState } from '../groups/model.ts';
import type {
  FleetInstance,
  InboxAddress,
  StateEnvelope,
  StatePublisher,
  StateSigner,
} from '../groups/ports.ts';
import { sha256Hex, signEnvelope } from '../state-envelope.ts';

export type FanoutOperation =
  | 'SNS:PublishBatch'
  | 'SNS:Publish'
  | 'SNS:Subscribe'
  | 'SNS:Unsubscribe'
  | 'SNS:SetSubscriptionAttributes'
  | 'SNS:ListSubscriptionsByTopic'
  | 'SQS:CreateQueue'
  | 'SQS:GetQueueUrl'
  | 'SQS:SetQueueAttributes'
  | 'SQS:DeleteQueue'
  | 'SQS:ListQueueTags'
  | 'SQS:TagQueue'
  | 'S3:PutObject';

export interface SnsStatePublisherOptions {
  sns: SNSClient;
  sqs: SQSClient;
  /** For states too large to travel in a message. */
  s3: S3Client;
  bucket: string;
  signer: StateSigner;
  /** One ARN per topic shard, shard n at index n (see topicNames()); the count is the shard count. */
  topicArns: readonly string[];
  /** Signing time; default the wall clock. */
  clock?: () => Date;
  /** Envelopes over this go through S3; default MAX_INLINE_ENVELOPE_BYTES (~200 KB). */
  maxInlineBytes?: number;
  /** Signatures in flight at once (KMS Sign is a network call with a per-account rate quota); default 16. */
  signConcurrency?: number;
  /** PublishBatch requests in flight at once; default 4. */
  publishConcurrency?: number;
  /** Called once per AWS request, so benchmarks can report requests per rollout. */
  onRequest?: (operation: FanoutOperation) => void;
  /**
   * `arn:<partition>:ec2:<region>:<account>:instance/`: bindInbox tags an inbox with this plus the instance
   * id, the value the host role's `${ec2:SourceInstanceARN}` condition compares with. Needed by bindInbox only.
   */
  instanceArnPrefix?: string;
}

/** Entries SNS refused twice; `hostIds` names the hosts whose states did not go out. */
export class StatePublishError extends Error {
  constructor(
    message: string,
    readonly hostIds: string[],
    readonly failures: { hostId: string; code: string; message: string }[],
  ) {
    super(message);
    this.name = 'StatePublishError';
  }
}

const DLQ_RETENTION_SECONDS = '1209600';

interface Outgoing {
  hostId: string;
  shard: number;
  message: string;
  attributes: StateMessageAttributes;
}

/**
 * Desired states to hosts over SNS → per-host SQS inbox. Each host's inbox is subscribed to one topic shard
 * (hash of its id) with a filter on message attributes, so SNS, not the host, decides who gets what: a host
 * never sees another host's state. Messages are raw (the SQS body is the envelope JSON) and signed;
 * states too large for a message are stored in S3 and the signed envelope carries their sha256.
 */
export class SnsStatePublisher implements StatePublisher {
  private readonly shardCount: number;

  constructor(private readonly options: SnsStatePublisherOptions) {
    if (options.topicArns.length === 0) throw new ValidationError('at least one state topic is needed');
    this.shardCount = options.topicArns.length;
  }

  topicArnFor(hostId: string): string {
    return this.options.topicArns[shardOf(hostId, this.shardCount)] as string;
  }

  async ensureInbox(address: InboxAddress): Promise<{ queueUrl: string }> {
    const topicArn = this.topicArnFor(address.hostId);
    const filterPolicy = inboxFilterPolicy(address);
    const combinations = filterPolicyCombinations(filterPolicy);
    if (combinations > MAX_FILTER_COMBINATIONS) {
      throw new ValidationError(
        `host ${address.hostId} has too many roles for one SNS filter policy (${combinations} combinations, at most ${MAX_FILTER_COMBINATIONS})`,
        { hostId: address.hostId, roles: address.roles },
      );
    }
    const queueName = inboxQueueName(address.hostId);
    const dlqName = inboxDlqName(address.hostId);
    const queueArn = queueArnBesideTopic(topicArn, queueName);
    const dlqArn = queueArnBesideTopic(topicArn, dlqName);

    await this.upsertQueue(dlqName, {
      MessageRetentionPeriod: DLQ_RETENTION_SECONDS,
      SqsManagedSseEnabled: 'true',
      // The subscription's own DLQ too: SNS parks here what it could not deliver to the inbox.
      Policy: JSON.stringify(inboxQueuePolicy(dlqArn, topicArn)),
    });
    const queueUrl = await this.upsertQueue(queueName, {
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: dlqArn,
        maxReceiveCount: INBOX_MAX_RECEIVE_COUNT,
      }),
      SqsManagedSseEnabled: 'true',
      Policy: JSON.stringify(inboxQueuePolicy(queueArn, topicArn)),
    });

    const attributes = {
      RawMessageDelivery: 'true',
      FilterPolicyScope: 'MessageAttributes',
      FilterPolicy: JSON.stringify(filterPolicy),
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn }),
    };
    const previous = await this.taggedSubscription(queueUrl);
    if (previous && topicOfSubscription(previous) === topicArn) {
      // Same shard: roles or group may have changed, so the filter is rewritten, not assumed.
      await this.setSubscriptionAttribute(previous, 'FilterPolicy', attributes.FilterPolicy);
      return { queueUrl };
    }
    const subscriptionArn = await this.subscribe(topicArn, queueArn, attributes);
    // The shard count changed since this inbox was made: the old shard must stop delivering broadcasts.
    if (previous) await this.unsubscribe(previous);
    this.count('SQS:TagQueue');
    await this.options.sqs.send(
      new TagQueueCommand({ QueueUrl: queueUrl, Tags: { [SUBSCRIPTION_TAG]: subscriptionArn } }),
    );
    return { queueUrl };
  }

  /**
   * Lets exactly this instance read the host's inbox (and the large states written for it from now on): the
   * inbox is tagged with the instance's ARN, replacing an earlier instance's, which then can no longer reach
   * it. Called once the instance exists, beside the secret parameter's bind (shared/groups/inbox-binding.ts).
   */
  async bindInbox(hostId: string, instance: Pick<FleetInstance, 'instanceId'>): Promise<void> {
    const prefix = this.options.instanceArnPrefix;
    if (!prefix) throw new Error('SnsStatePublisher: bindInbox needs the instanceArnPrefix option');
    const queueUrl = await this.queueUrl(inboxQueueName(hostId));
    if (!queueUrl) throw new Error(`host ${hostId} has no inbox to bind to ${instance.instanceId}`);
    this.count('SQS:TagQueue');
    await this.options.sqs.send(
      new TagQueueCommand({
        QueueUrl: queueUrl,
        Tags: { [INSTANCE_ARN_TAG]: instanceArn(prefix, instance.instanceId), ...COST_ALLOCATION_TAGS },
      }),
    );
  }

  async removeInbox(hostId: string): Promise<void> {
    // Unsubscribe before deleting, so a crash half-way leaves a subscription-less queue to retry on, not
    // a subscription pointing at nothing.
    const queueUrl = await this.queueUrl(inboxQueueName(hostId));
    if (queueUrl) {
      const subscription = await this.taggedSubscription(queueUrl);
      if (subscription) await this.unsubscribe(subscription);
      await this.deleteQueue(queueUrl);
    }
    const dlqUrl = await this.queueUrl(inboxDlqName(hostId));
    if (dlqUrl) await this.deleteQueue(dlqUrl);
  }

  async publish(states: readonly DesiredHostState[]): Promise<void> {
    if (states.length === 0) return;
    const signedAt = (this.options.clock ?? (() => new Date()))();
    const outgoing = await mapLimited(states, this.options.signConcurrency ?? 16, (state) =>
      this.envelope(state, signedAt),
    );
    const batches = byShard(outgoing, this.shardCount).flatMap(({ items }) =>
      chunk(items, PUBLISH_BATCH_SIZE),
    );
    const firstFailures = (
      await mapLimited(batches, this.options.publishConcurrency ?? 4, (batch) => this.publishBatch(batch))
    ).flat();
    if (firstFailures.length === 0) return;

    // One retry of just the refused entries: SNS refuses entries for throttling or internal errors that a
    // second try usually gets through; anything refused twice is the caller's (Step Functions') to retry.
    const retryBatches = byShard(
      firstFailures.map((f) => f.entry),
      this.shardCount,
    ).flatMap(({ items }) => chunk(items, PUBLISH_BATCH_SIZE));
    const failures = (
      await mapLimited(retryBatches, this.options.publishConcurrency ?? 4, (batch) =>
        this.publishBatch(batch),
      )
    ).flat();
    if (failures.length === 0) return;
    const hostIds = [...new Set(failures.map((f) => f.entry.hostId))].sort();
    throw new StatePublishError(
      `SNS refused the states of ${hostIds.length} host(s) twice: ${hostIds.join(', ')} (${failures[0]?.code}: ${failures[0]?.message})`,
      hostIds,
      failures.map((f) => ({ hostId: f.entry.hostId, code: f.code, message: f.message })),
    );
  }

  /**
   * One signed message to every host of `target.group` having `target.role`, on every shard (hosts of a
   * group are spread over shards by their ids). `messageId` is what hosts tell a repeat by: send the same one
   * again when retrying the same broadcast.
   */
  async broadcast(
    target: BroadcastTarget,
    payload: Record<string, unknown>,
    messageId: string,
  ): Promise<void> {
    const signedAt = (this.options.clock ?? (() => new Date()))();
    const envelope = await signBroadcast(this.options.signer, target, payload, signedAt, messageId);
    const message = JSON.stringify(envelope);
    const attributes = toSnsAttributes(broadcastMessageAttributes(target));
    await Promise.all(
      this.options.topicArns.map((topicArn) => {
        this.count('SNS:Publish');
        return this.options.sns.send(
          new PublishCommand({ TopicArn: topicArn, Message: message, MessageAttributes: attributes }),
        );
      }),
    );
  }

  private async envelope(state: DesiredHostState, signedAt: Date): Promise<Outgoing> {
    const attributes = hostMessageAttributes(state);
    const shard = shardOf(state.hostId, this.shardCount);
    const inline = await signEnvelope(this.options.signer, { state }, signedAt);
    const inlineJson = JSON.stringify(inline);
    if (travelsInline(inlineJson, attributes, this.options.maxInlineBytes ?? MAX_INLINE_ENVELOPE_BYTES)) {
      return { hostId: state.hostId, shard, message: inlineJson, attributes };
    }
    // Content-addressed by the sha256 in the signed envelope: the object's key may be overwritten by a
    // retried publish of the same version, but a host only acts on bytes matching what was signed.
    const body = JSON.stringify(state);
    const key = stateObjectKey(state.hostId, state.stateVersion);
    // Readable only by the instance the inbox is bound to (the host role's s3:ExistingObjectTag condition);
    // an inbox not bound yet leaves the object unreadable to every host, which fails closed.
    const owner = await this.inboxOwner(state.hostId);
    const tags = new URLSearchParams({
      ...(owner ? { [INSTANCE_ARN_TAG]: owner } : {}),
      ...COST_ALLOCATION_TAGS,
    });
    this.count('S3:PutObject');
    await this.options.s3.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/json',
        Tagging: tags.toString(),
      }),
    );
    const ref: NonNullable<StateEnvelope['ref']> = {
      bucket: this.options.bucket,
      key,
      sha256: sha256Hex(body),
    };
    const byRef = await signEnvelope(
      this.options.signer,
      { ref, hostId: state.hostId, stateVersion: state.stateVersion },
      signedAt,
    );
    return { hostId: state.hostId, shard, message: JSON.stringify(byRef), attributes };
  }

  private async publishBatch(
    batch: Outgoing[],
  ): Promise<{ entry: Outgoing; code: string; message: string }[]> {
    const first = batch[0];
    if (!first) return [];
    const topicArn = this.options.topicArns[first.shard] as string;
    const entries: PublishBatchRequestEntry[] = batch.map((entry, index) => ({
      Id: `e${index}`,
      Message: entry.message,
      MessageAttributes: toSnsAttributes(entry.attributes),
    }));
    this.count('SNS:PublishBatch');
    const response = await this.options.sns.send(
      new PublishBatchCommand({ TopicArn: topicArn, PublishBatchRequestEntries: entries }),
    );
    return (response.Failed ?? []).map((failed) => {
      const entry = batch[Number(failed.Id?.slice(1))];
      if (!entry) throw new Error(`SNS reported a failure for unknown batch entry ${failed.Id}`);
      return { entry, code: failed.Code ?? 'Unknown', message: failed.Message ?? '' };
    });
  }

  /** The ARN of the instance the host's inbox is bound to, if it is. */
  private async inboxOwner(hostId: string): Promise<string | undefined> {
    const queueUrl = await this.queueUrl(inboxQueueName(hostId));
    if (!queueUrl) return undefined;
    this.count('SQS:ListQueueTags');
    const tags = await this.options.sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }));
    return tags.Tags?.[INSTANCE_ARN_TAG] || undefined;
  }

  /**
   * CreateQueue is idempotent only for equal attributes; an inbox made under other settings is updated.
   * A new queue carries the cost allocation tags from its first moment; an existing one is tagged again.
   */
  private async upsertQueue(name: string, attributes: Record<string, string>): Promise<string> {
    try {
      this.count('SQS:CreateQueue');
      const created = await this.options.sqs.send(
        new CreateQueueCommand({ QueueName: name, Attributes: attributes, tags: COST_ALLOCATION_TAGS }),
      );
      if (!created.QueueUrl) throw new Error(`CreateQueue ${name} returned no URL`);
      return created.QueueUrl;
    } catch (error) {
      if (
        !isErrorNamed(
          error,
          'QueueNameExists',
          'QueueAlreadyExists',
          'AWS.SimpleQueueService.QueueNameExists',
        )
      )
        throw error;
    }
    const url = await this.queueUrl(name);
    if (!url) throw new Error(`queue ${name} exists and does not`);
    this.count('SQS:SetQueueAttributes');
    await this.options.sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: attributes }));
    this.count('SQS:TagQueue');
    await this.options.sqs.send(new TagQueueCommand({ QueueUrl: url, Tags: COST_ALLOCATION_TAGS }));
    return url;
  }

  private async queueUrl(name: string): Promise<string | undefined> {
    try {
      this.count('SQS:GetQueueUrl');
      return (await this.options.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    } catch (error) {
      if (isQueueMissing(error)) return undefined;
      throw error;
    }
  }

  private async deleteQueue(url: string): Promise<void> {
    try {
      this.count('SQS:DeleteQueue');
      await this.options.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    } catch (error) {
      if (!isQueueMissing(error)) throw error;
    }
  }

  private async taggedSubscription(queueUrl: string): Promise<string | undefined> {
    this.count('SQS:ListQueueTags');
    const tags = await this.options.sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }));
    return tags.Tags?.[SUBSCRIPTION_TAG] || undefined;
  }

  private async subscribe(
    topicArn: string,
    queueArn: string,
    attributes: Record<string, string>,
  ): Promise<string> {
    try {
      this.count('SNS:Subscribe');
      const response = await this.options.sns.send(
        new SubscribeCommand({
          TopicArn: topicArn,
          Protocol: 'sqs',
          Endpoint: queueArn,
          Attributes: attributes,
          ReturnSubscriptionArn: true,
        }),
      );
      if (!response.SubscriptionArn) throw new Error(`Subscribe ${queueArn} returned no ARN`);
      return response.SubscriptionArn;
    } catch (error) {
      // The subscription exists (its tag was lost, or a concurrent ensureInbox made it) with another
      // filter: find it and bring it up to date.
      if (!isErrorNamed(error, 'InvalidParameter', 'InvalidParameterException')) throw error;
      if (!String((error as Error).message).includes('already exists')) throw error;
    }
    const existing = await this.findSubscription(topicArn, queueArn);
    if (!existing) throw new Error(`SNS says ${queueArn} is subscribed to ${topicArn} but does not list it`);
    for (const [name, value] of Object.entries(attributes)) {
      if (name !== 'FilterPolicyScope') await this.setSubscriptionAttribute(existing, name, value);
    }
    return existing;
  }

  private async findSubscription(topicArn: string, queueArn: string): Promise<string | undefined> {
    let next: string | undefined;
    do {
      this.count('SNS:ListSubscriptionsByTopic');
      const page = await this.options.sns.send(
        new ListSubscriptionsByTopicCommand({ TopicArn: topicArn, NextToken: next }),
      );
      const found = page.Subscriptions?.find((s) => s.Protocol === 'sqs' && s.Endpoint === queueArn);
      if (found?.SubscriptionArn) return found.SubscriptionArn;
      next = page.NextToken;
    } while (next);
    return undefined;
  }

  private async setSubscriptionAttribute(subscriptionArn: string, name: string, value: string) {
    this.count('SNS:SetSubscriptionAttributes');
    await this.options.sns.send(
      new SetSubscriptionAttributesCommand({
        SubscriptionArn: subscriptionArn,
        AttributeName: name,
        AttributeValue: value,
      }),
    );
  }

  private async unsubscribe(subscriptionArn: string): Promise<void> {
    try {
      this.count('SNS:Unsubscribe');
      await this.options.sns.send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn }));
    } catch (error) {
      if (!isErrorNamed(error, 'NotFound', 'NotFoundException')) throw error;
    }
  }

  private count(operation: FanoutOperation): void {
    this.options.onRequest?.(operation);
  }
}

/** `arn:…:sns:region:account:topic:subscription-id` → the topic's ARN. */
function topicOfSubscription(subscriptionArn: string): string {
  return subscriptionArn.slice(0, subscriptionArn.lastIndexOf(':'));
}

function isErrorNamed(error: unknown, ...names: string[]): boolean {
  const { name, Code, code } = (error ?? {}) as { name?: string; Code?: string; code?: string };
  return names.some((n) => n === name || n === Code || n === code);
}

function isQueueMissing(error: unknown): boolean {
  return isErrorNamed(error, 'QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue');
}

/** Like Promise.all over `items`, with at most `limit` calls in flight; results keep the input order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}
