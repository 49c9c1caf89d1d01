import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface AlarmTopicProps {
  /**
   * An address that receives every alarm by e-mail (SNS asks it to confirm the subscription first).
   * @default none: subscribe whatever should be told (a chat hook, a pager) to the topic's ARN
   */
  readonly alarmEmail?: string;
  /**
   * @default 'fleetfold-alarms'
   */
  readonly topicName?: string;
}

/**
 * Where the alarms a group raises reach people: one SNS topic (SSE with SNS's own key, TLS only), each
 * message carrying `group` and `alarm` attributes for subscription filters.
 */
export class AlarmTopic extends Construct {
  readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: AlarmTopicProps = {}) {
    super(scope, id);
    // As for the state topics: SNS's own key, since a customer key would have to be granted to every
    // publisher and to SNS's e-mail delivery for no gain in who can read an alarm.
    const snsKey = kms.Alias.fromAliasName(this, 'SnsManagedKey', 'alias/aws/sns');
    this.topic = new sns.Topic(this, 'Topic', {
      topicName: props.topicName ?? 'fleetfold-alarms',
      displayName: 'fleetfold alarms',
      masterKey: snsKey,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
  }
}
