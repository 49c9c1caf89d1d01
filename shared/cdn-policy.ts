import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { SNAPSHOT_PREFIX } from './keys.ts';

/*
 * CloudFront signed URLs with a custom policy, as CloudFront makes and checks them:
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-creating-signed-url-custom-policy.html
 *
 * The policy is JSON without whitespace; `Policy` is that JSON and `Signature` its RSA-SHA1 signature, each in
 * CloudFront's URL-safe base64 (`+` → `-`, `=` → `_`, `/` → `~`); `Key-Pair-Id` names the public key of the
 * distribution's trusted key group that verifies it. The keys come in as KeyObjects: nothing here reads a file,
 * an environment variable or the clock.
 */

/** What one statement of a custom policy allows: a resource (with `*` and `?` wildcards) within a time window. */
export interface CustomPolicy {
  resource: string;
  /** `DateLessThan`: epoch seconds; the URL is refused from this second on. */
  expiresAt: number;
  /** `DateGreaterThan`: epoch seconds; the URL is refused before it. */
  notBefore?: number;
  /** `IpAddress`: the viewer's IPv4 address or CIDR block. */
  sourceIp?: string;
}

export interface SignedPolicy {
  /** The `Policy` query parameter. */
  policy: string;
  /** The `Signature` query parameter. */
  signature: string;
  /** The `Key-Pair-Id` query parameter: the CloudFront public key's id. */
  keyPairId: string;
}

export interface PolicySigningKey {
  keyPairId: string;
  /** The RSA private key whose public half is in the distribution's trusted key group. */
  privateKey: KeyObject;
}

export function toCloudFrontBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replaceAll('+', '-').replaceAll('=', '_').replaceAll('/', '~');
}

/** Undefined for text outside CloudFront's alphabet, where plain base64 decoding would skip characters. */
export function fromCloudFrontBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9~_-]*$/.test(text)) return undefined;
  return Buffer.from(text.replaceAll('-', '+').replaceAll('_', '=').replaceAll('~', '/'), 'base64');
}

/** The policy statement CloudFront expects, keys in its documented order, no whitespace. */
export function policyDocument(policy: CustomPolicy): string {
  const condition: Record<string, unknown> = { DateLessThan: { 'AWS:EpochTime': policy.expiresAt } };
  if (policy.notBefore !== undefined) condition.DateGreaterThan = { 'AWS:EpochTime': policy.notBefore };
  if (policy.sourceIp !== undefined) condition.IpAddress = { 'AWS:SourceIp': policy.sourceIp };
  return JSON.stringify({ Statement: [{ Resource: policy.resource, Condition: condition }] });
}

export function signCustomPolicy(policy: CustomPolicy, key: PolicySigningKey): SignedPolicy {
  const document = Buffer.from(policyDocument(policy), 'utf8');
  return {
    policy: toCloudFrontBase64(document),
    signature: toCloudFrontBase64(sign('RSA-SHA1', document, key.privateKey)),
    keyPairId: key.keyPairId,
  };
}

export type PolicyRefusal =
  | 'missing-parameters'
  | 'unknown-key'
  | 'bad-signature'
  | 'malformed-policy'
  | 'resource-mismatch'
  | 'expired'
  | 'not-yet-valid'
  | 'ip-mismatch';

export type PolicyVerdict =
  | { ok: true; policy: CustomPolicy; keyPairId: string }
  | { ok: false; reason: PolicyRefusal; detail: string };

export interface ViewerRequest {
  /** The URL as the viewer asked for it (scheme, host, path, query), signing parameters included. */
  url: string;
  /** The viewer's address, checked when the policy has an IpAddress condition. */
  sourceIp?: string;
}

/** The query parameters CloudFront consumes itself; everything else in the URL is matched against the policy. */
const SIGNING_PARAMETERS = ['Policy', 'Signature', 'Key-Pair-Id', 'Expires'] as const;

/**
 * CloudFront's check of a signed URL with a custom policy: the key pair id names a trusted key, the signature
 * verifies over the decoded policy, the URL without the signing parameters matches the policy's Resource,
 * and the time and address conditions hold.
 */
export function verifySignedUrl(
  request: ViewerRequest,
  trustedKeys: ReadonlyMap<string, KeyObject>,
  now: Date,
): PolicyVerdict {
  const url = new URL(request.url);
  const policyText = url.searchParams.get('Policy');
  const signatureText = url.searchParams.get('Signature');
  const keyPairId = url.searchParams.get('Key-Pair-Id');
  if (!policyText || !signatureText || !keyPairId) {
    return refuse('missing-parameters', 'Policy, Signature and Key-Pair-Id are all required');
  }
  const publicKey = trustedKeys.get(keyPairId);
  if (!publicKey) return refuse('unknown-key', `Key-Pair-Id ${keyPairId} is not in the trusted key group`);
  const document = fromCloudFrontBase64(policyText);
  const signature = fromCloudFrontBase64(signatureText);
  if (!document || !signature || !verifies(document, publicKey, signature)) {
    return refuse('bad-signature', 'the signature does not verify over the policy with that key');
  }
  const policy = parsePolicyDocument(document.toString('utf8'));
  if (!policy) return refuse('malformed-policy', 'the policy is not one statement with a DateLessThan');
  if (!resourceMatches(policy.resource, urlWithoutSigning(url))) {
    return refuse('resource-mismatch', `the URL is outside the policy's resource ${policy.resource}`);
  }
  const seconds = Math.floor(now.getTime() / 1000);
  if (seconds >= policy.expiresAt) return refuse('expired', `the policy expired at ${policy.expiresAt}`);
  if (policy.notBefore !== undefined && seconds < policy.notBefore) {
    return refuse('not-yet-valid', `the policy is valid from ${policy.notBefore}`);
  }
  if (policy.sourceIp !== undefined && !(request.sourceIp && inCidr(request.sourceIp, policy.sourceIp))) {
    return refuse('ip-mismatch', `the viewer address is outside ${policy.sourceIp}`);
  }
  return { ok: true, policy, keyPairId };
}

/** A signature of the wrong length or a key of the wrong type is a failed check, not an exception. */
function verifies(document: Buffer, publicKey: KeyObject, signature: Buffer): boolean {
  try {
    return verify('RSA-SHA1', document, publicKey, signature);
  } catch {
    return false;
  }
}

function refuse(reason: PolicyRefusal, detail: string): PolicyVerdict {
  return { ok: false, reason, detail };
}

/** Undefined for anything but the one-statement shape policyDocument writes. */
export function parsePolicyDocument(text: string): CustomPolicy | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const statements = (parsed as { Statement?: unknown })?.Statement;
  if (!Array.isArray(statements) || statements.length !== 1) return undefined;
  const { Resource, Condition } = (statements[0] ?? {}) as { Resource?: unknown; Condition?: unknown };
  if (typeof Resource !== 'string' || typeof Condition !== 'object' || Condition === null) return undefined;
  const conditions = Condition as Record<string, Record<string, unknown> | undefined>;
  const expiresAt = conditions.DateLessThan?.['AWS:EpochTime'];
  const notBefore = conditions.DateGreaterThan?.['AWS:EpochTime'];
  const sourceIp = conditions.IpAddress?.['AWS:SourceIp'];
  if (!Number.isInteger(expiresAt)) return undefined;
  if (notBefore !== undefined && !Number.isInteger(notBefore)) return undefined;
  if (sourceIp !== undefined && typeof sourceIp !== 'string') return undefined;
  return {
    resource: Resource,
    expiresAt: expiresAt as number,
    ...(notBefore === undefined ? {} : { notBefore: notBefore as number }),
    ...(sourceIp === undefined ? {} : { sourceIp }),
  };
}

/** The URL with CloudFront's own parameters cut out and every other byte of the query left as it was sent. */
function urlWithoutSigning(url: URL): string {
  const signing = new Set<string>(SIGNING_PARAMETERS);
  const kept = url.search
    .slice(1)
    .split('&')
    .filter((pair) => pair !== '' && !signing.has(pair.split('=')[0] ?? ''));
  return `${url.origin}${url.pathname}${kept.length ? `?${kept.join('&')}` : ''}`;
}

/** CloudFront's wildcards: `*` is any run of characters (none included), `?` exactly one; case matters. */
export function resourceMatches(resource: string, url: string): boolean {
  const pattern = [...resource]
    .map((char) => (char === '*' ? '.*' : char === '?' ? '.' : char.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${pattern}$`, 's').test(url);
}

function inCidr(address: string, block: string): boolean {
  const [base, bitsText] = block.split('/');
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const a = ipv4(address);
  const b = base === undefined ? undefined : ipv4(base);
  if (a === undefined || b === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

function ipv4(text: string): number | undefined {
  const parts = text.replace(/^::ffff:/, '').split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

/* The upload grant: what a host gets at registration to PUT its snapshots through the distribution. */

/** A host's grant: the signed policy for its own prefix, and the URL base it applies to. */
export interface UploadGrant {
  hostId: string;
  /** `https://<distribution domain>` (locally the stand-in's `http://127.0.0.1:<port>`). */
  url: string;
  /** `<url>/snapshots/<hostId>/*` */
  resource: string;
  /** When the policy's DateLessThan falls; a new grant must be in place before. */
  expiresAt: string;
  policy: string;
  signature: string;
  keyPairId: string;
}

/** One grant per host: its own prefix, and only PUTs of objects below it (a `*` covers deeper paths too). */
export function uploadResource(url: string, hostId: string): string {
  return `${url.replace(/\/+$/, '')}/${SNAPSHOT_PREFIX}${hostId}/*`;
}

export interface UploadGrantRequest {
  url: string;
  hostId: string;
  now: Date;
  lifetimeSeconds: number;
  key: PolicySigningKey;
}

export function issueUploadGrant(request: UploadGrantRequest): UploadGrant {
  const expiresAt = Math.floor(request.now.getTime() / 1000) + Math.floor(request.lifetimeSeconds);
  const resource = uploadResource(request.url, request.hostId);
  return {
    hostId: request.hostId,
    url: request.url.replace(/\/+$/, ''),
    resource,
    expiresAt: new Date(expiresAt * 1000).toISOString(),
    ...signCustomPolicy({ resource, expiresAt }, request.key),
  };
}

/** `<url>/<key>?Policy=…&Signature=…&Key-Pair-Id=…`: the URL a host PUTs one object to. */
export function signedObjectUrl(url: string, key: string, signed: SignedPolicy): string {
  const target = new URL(`${url.replace(/\/+$/, '')}/${key.split('/').map(encodeURIComponent).join('/')}`);
  // The values are already URL-safe: appended as they are, exactly as CloudFront's own examples show them.
  return `${target.href}?Policy=${signed.policy}&Signature=${signed.signature}&Key-Pair-Id=${signed.keyPairId}`;
}

/** An id for a locally made key, shaped like CloudFront's (`K` and 13 more upper-case letters and digits). */
export function localKeyPairId(privateOrPublicKey: KeyObject): string {
  const spki = createPublicKey(privateOrPublicKey).export({ type: 'spki', format: 'der' });
  return `K${createHash('sha256').update(spki).digest('hex').slice(0, 13).toUpperCase()}`;
}

/** Grants last this long unless configured: long enough to ride out an outage, short enough to bound a leak. */
export const DEFAULT_UPLOAD_GRANT_DAYS = 30;

/** Hands out upload grants; configured only where the distribution's signing key is available. */
export interface UploadGrantIssuer {
  issue(hostId: string, now: Date): Promise<UploadGrant>;
}

export interface UploadGrantIssuerOptions {
  /** `https://<distribution domain>`. */
  url: string;
  /** Fetched once, on the first grant (an SSM read on AWS, a key file locally). */
  loadKey: () => Promise<PolicySigningKey>;
  lifetimeSeconds?: number;
}

export function uploadGrantIssuer(options: UploadGrantIssuerOptions): UploadGrantIssuer {
  let key: Promise<PolicySigningKey> | undefined;
  const lifetimeSeconds = options.lifetimeSeconds ?? DEFAULT_UPLOAD_GRANT_DAYS * 86_400;
  return {
    async issue(hostId, now) {
      key ??= options.loadKey().catch((error: unknown) => {
        // A failed read is not cached: the next registration tries again.
        key = undefined;
        throw error;
      });
      return issueUploadGrant({ url: options.url, hostId, now, lifetimeSeconds, key: await key });
    },
  };
}
