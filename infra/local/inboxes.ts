import { CreateTopicCommand, type SNSClient } from '@aws-sdk/client-sns';
import { STATE_TOPIC_BASE, topicNames } from '../../shared/groups/fanout.ts';

/**
 * Local mode's part of what the StateFanout construct deploys: the state topic shards on fauxqs. Idempotent
 * (CreateTopic returns the existing topic), so it runs on every start. Returns the ARNs by shard, the
 * `topicArns` option of SnsStatePublisher.
 */
export async function ensureStateTopics(
  sns: SNSClient,
  shardCount = 1,
  base = STATE_TOPIC_BASE,
): Promise<string[]> {
  const arns: string[] = [];
  for (const name of topicNames(shardCount, base)) {
    const created = await sns.send(new CreateTopicCommand({ Name: name }));
    if (!created.TopicArn) throw new Error(`CreateTopic ${name} returned no ARN`);
    arns.push(created.TopicArn);
  }
  return arns;
}
