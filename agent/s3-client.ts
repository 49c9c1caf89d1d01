import { S3Client } from '@aws-sdk/client-s3';
import type { AgentConfig } from './config.ts';

export function createS3Client(config: AgentConfig, region: string): S3Client {
  if (config.mode === 'local') {
    return new S3Client({
      region,
      endpoint: config.s3.endpoint,
      // Emulators serve buckets under the path, not as subdomains of 127.0.0.1.
      forcePathStyle: true,
      // The emulator checks no signatures, but the SDK insists on signing with something.
      credentials: { accessKeyId: 'fleetfold-local', secretAccessKey: 'fleetfold-local' },
      // Default checksums stream the body in aws-chunked form, which some emulators store mangled.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }
  // The default credential chain finds the instance role through IMDS.
  return new S3Client({ region, ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}) });
}
