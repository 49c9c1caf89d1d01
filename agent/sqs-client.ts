import { SQSClient } from '@aws-sdk/client-sqs';
import { fromEnv } from '@aws-sdk/credential-provider-env';
import type { AgentConfig, InboxConfig } from './config.ts';

export function createSqsClient(config: AgentConfig, inbox: InboxConfig, region: string): SQSClient {
  if (config.mode === 'local') {
    const endpoint = 'url' in inbox.queue ? new URL(inbox.queue.url).origin : undefined;
    return new SQSClient({
      region,
      ...(endpoint ? { endpoint } : {}),
      // The local fleet gives each instance its own key (AWS_ACCESS_KEY_ID…), which the local cloud's SQS guard
      // checks as IAM would; an agent started by hand against bare fauxqs signs with a placeholder.
      credentials: () => fromEnv()().catch(() => LOCAL_PLACEHOLDER),
    });
  }
  // The default credential chain finds the instance role through IMDS.
  return new SQSClient({ region, ...(inbox.sqsEndpoint ? { endpoint: inbox.sqsEndpoint } : {}) });
}

const LOCAL_PLACEHOLDER = { accessKeyId: 'fleetfold-local', secretAccessKey: 'fleetfold-local' };
