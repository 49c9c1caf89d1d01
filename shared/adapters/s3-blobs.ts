import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { NotFoundError } from '../errors.ts';
import type { BlobStore } from '../groups/ports.ts';

/** Where plans too large for a document go: the bucket the reconcile is given, under the key it names. */
export class S3Blobs implements BlobStore {
  readonly #client: S3Client;
  readonly #bucket: string;

  constructor(options: { client: S3Client; bucket: string }) {
    this.#client = options.client;
    this.#bucket = options.bucket;
  }

  async put(key: string, body: string) {
    await this.#client.send(
      new PutObjectCommand({
        Bucket: this.#bucket,
        Key: key,
        Body: body,
        ContentType: 'application/json',
      }),
    );
    return { bucket: this.#bucket, key };
  }

  async get(ref: { bucket: string; key: string }) {
    const response = await this.#client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    if (!response.Body) throw new NotFoundError(`plan object ${ref.key} has no body`, { key: ref.key });
    return response.Body.transformToString('utf8');
  }
}
