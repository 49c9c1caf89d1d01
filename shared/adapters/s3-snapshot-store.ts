import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { TooLargeError } from '../errors.ts';
import { quarantineKeys } from '../keys.ts';
import type { Rejection, SnapshotStore, StoredObject } from '../ports.ts';

export interface S3SnapshotStoreOptions {
  client: S3Client;
  bucket: string;
  /** Called once per S3 request, so benchmarks can count requests by kind. */
  onRequest?: (operation: 'GetObject' | 'CopyObject' | 'PutObject' | 'DeleteObject') => void;
}

export class S3SnapshotStore implements SnapshotStore {
  constructor(private readonly options: S3SnapshotStoreOptions) {}

  async read(key: string, maxBytes: number): Promise<StoredObject> {
    const { client, bucket, onRequest } = this.options;
    onRequest?.('GetObject');
    const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const size = response.ContentLength ?? 0;
    if (size > maxBytes) {
      // Don't download what we are going to refuse anyway.
      (response.Body as { destroy?: () => void } | undefined)?.destroy?.();
      throw new TooLargeError(`snapshot is ${size} bytes, the limit is ${maxBytes}`, { size, maxBytes });
    }
    const body = (await response.Body?.transformToString('utf8')) ?? '';
    const actual = Buffer.byteLength(body);
    if (actual > maxBytes) {
      throw new TooLargeError(`snapshot is ${actual} bytes, the limit is ${maxBytes}`, {
        size: actual,
        maxBytes,
      });
    }
    return { body, size: actual };
  }

  /**
   * Copy, then write the reason, then delete: if we die half-way the original is still there and the
   * redelivered message quarantines it again; nothing is lost, a repeat only overwrites the same copies.
   */
  async quarantine(key: string, rejection: Rejection & { rejectedAt: string }): Promise<void> {
    const { client, bucket, onRequest } = this.options;
    const target = quarantineKeys(key);
    let copied = true;
    try {
      onRequest?.('CopyObject');
      await client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: target.object,
          CopySource: `${bucket}/${encodeURIComponent(key).replaceAll('%2F', '/')}`,
        }),
      );
    } catch (error) {
      // Already moved by an earlier delivery of the same notification.
      if (!(error instanceof NoSuchKey) && (error as { name?: string }).name !== 'NoSuchKey') throw error;
      copied = false;
    }
    onRequest?.('PutObject');
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: target.reason,
        ContentType: 'application/json',
        Body: JSON.stringify({ key, quarantinedAs: target.object, ...rejection }, null, 2),
      }),
    );
    if (copied) {
      onRequest?.('DeleteObject');
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    }
  }
}
