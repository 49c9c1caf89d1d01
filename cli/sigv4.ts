import { createHash, createHmac } from 'node:crypto';
import type { AwsCredentialIdentity, Provider } from '@smithy/types';

/** The hash interface @smithy/signature-v4 expects, over node:crypto (no @aws-crypto package needed). */
class NodeSha256 {
  readonly #hash;

  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash =
      secret === undefined
        ? createHash('sha256')
        : createHmac('sha256', typeof secret === 'string' ? secret : toBuffer(secret));
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(typeof data === 'string' ? data : toBuffer(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
}

function toBuffer(data: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(data)
    ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    : Buffer.from(new Uint8Array(data));
}

export interface SignableRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

export interface SigningOptions {
  region: string;
  /** `execute-api` for API Gateway. */
  service?: string;
  /** Defaults to the AWS SDK's chain: environment, profile, SSO, container and instance roles. */
  credentials?: AwsCredentialIdentity | Provider<AwsCredentialIdentity>;
  signingDate?: Date;
}

/** Returns the headers to send: the given ones plus x-amz-date, authorization (and the session token). */
export async function signRequest(
  request: SignableRequest,
  options: SigningOptions,
): Promise<Record<string, string>> {
  // Loaded on first use: bearer-token users (local mode) never pay for the SDK's credential chain.
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const credentials =
    options.credentials ?? (await import('@aws-sdk/credential-provider-node')).defaultProvider();
  const signer = new SignatureV4({
    service: options.service ?? 'execute-api',
    region: options.region,
    credentials,
    sha256: NodeSha256,
    // API Gateway does not want the payload hash as a header (S3 does); the signature covers the body anyway.
    applyChecksum: false,
  });
  const query: Record<string, string> = {};
  for (const [name, value] of request.url.searchParams) query[name] = value;
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      ...(request.url.port ? { port: Number(request.url.port) } : {}),
      path: request.url.pathname,
      query,
      headers: { ...request.headers, host: request.url.host },
      ...(request.body !== undefined ? { body: request.body } : {}),
    },
    options.signingDate ? { signingDate: options.signingDate } : {},
  );
  // fetch derives Host from the URL, byte for byte what was signed.
  const { host: _host, ...headers } = signed.headers;
  return headers;
}
