import { SQSClient } from '@aws-sdk/client-sqs';
import type { AgentConfig, InboxConfig } from './config.ts';

export function createSqsClient(config: AgentConfig, inbox: InboxConfig, region: string): SQSClient {
  if (config.mode === 'local') {
    const endpoint = 'url' in inbox.queue ? new URL(inbox.queue.url).origin : undefined;
    return new SQSClient({
      region,
      ...(endpoint ? { endpoint } : {}),
      // The emulator checks no signatures, but the SDK insists on signing with something.
      credentials: { accessKeyId: 'fleetfold-local', secretAccessKey: 'fleetfold-local' },
    });
  }
  // The default credential chain finds the instance role through IMDS.
  return new SQSClient({ region, ...(inbox.sqsEndpoint ? { endpoint: inbox.sqsEndpoint } : {}) });
}
