import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  fromCloudFrontBase64,
  issueUploadGrant,
  localKeyPairId,
  parsePolicyDocument,
  policyDocument,
  resourceMatches,
  type SignedPolicy,
  signCustomPolicy,
  signedObjectUrl,
  toCloudFrontBase64,
  type UploadGrant,
  uploadGrantIssuer,
  verifySignedUrl,
} from '../shared/cdn-policy.ts';
import { snapshotKey } from '../shared/keys.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { keyPairId: localKeyPairId(privateKey), privateKey };
const trusted: ReadonlyMap<string, KeyObject> = new Map([[key.keyPairId, publicKey]]);
const DOMAIN = 'https://d111111abcdef8.cloudfront.net';
const NOW = new Date('2026-12-02T12:00:00Z');
const DAY = 86_400;

const hostId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);
const seq = fc.integer({ min: 1, max: 2 ** 40 });
const lifetime = fc.integer({ min: 60, max: 365 * DAY });

function grantFor(id: string, lifetimeSeconds = 30 * DAY, now = NOW): UploadGrant {
  return issueUploadGrant({ url: DOMAIN, hostId: id, now, lifetimeSeconds, key });
}

function urlFor(grant: UploadGrant, target: string, n: number, signed: SignedPolicy = grant): string {
  return signedObjectUrl(grant.url, snapshotKey(target, n), signed);
}

/** The policy's JSON re-encoded with one field changed and the original signature kept. */
function tampered(grant: UploadGrant, change: (policy: Record<string, unknown>) => void): SignedPolicy {
  const document = JSON.parse((fromCloudFrontBase64(grant.policy) as Buffer).toString('utf8'));
  change(document.Statement[0]);
  return { ...grant, policy: toCloudFrontBase64(Buffer.from(JSON.stringify(document))) };
}

describe("CloudFront's URL-safe base64", () => {
  it('round-trips any bytes and uses only the alphabet CloudFront accepts in a query string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const text = toCloudFrontBase64(bytes);
        expect(text).toMatch(/^[A-Za-z0-9~_-]*$/);
        expect(fromCloudFrontBase64(text)).toEqual(Buffer.from(bytes));
      }),
    );
  });

  it('rejects text that contains plain base64 characters or anything else outside the alphabet', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 20 }),
        fc.constantFrom('+', '/', '=', ' ', '%', '.'),
        (text, bad) => {
          expect(fromCloudFrontBase64(`${text}${bad}`)).toBeUndefined();
        },
      ),
    );
  });
});

describe('the custom policy document', () => {
  it('round-trips through its JSON, whitespace-free as CloudFront wants it', () => {
    fc.assert(
      fc.property(
        fc.webUrl(),
        fc.integer({ min: 0, max: 2 ** 32 }),
        fc.option(fc.integer({ min: 0, max: 2 ** 32 }), { nil: undefined }),
        fc.option(fc.ipV4(), { nil: undefined }),
        (resource, expiresAt, notBefore, sourceIp) => {
          const policy = {
            resource,
            expiresAt,
            ...(notBefore === undefined ? {} : { notBefore }),
            ...(sourceIp === undefined ? {} : { sourceIp }),
          };
          const document = policyDocument(policy);
          expect(document).not.toMatch(/\s/);
          expect(parsePolicyDocument(document)).toEqual(policy);
        },
      ),
    );
  });

  it('is the statement AWS documents, keys in their order', () => {
    expect(policyDocument({ resource: `${DOMAIN}/snapshots/h1/*`, expiresAt: 1_800_000_000 })).toBe(
      `{"Statement":[{"Resource":"${DOMAIN}/snapshots/h1/*","Condition":{"DateLessThan":{"AWS:EpochTime":1800000000}}}]}`,
    );
  });

  it('rejects documents that are not one statement with an integer DateLessThan', () => {
    for (const text of [
      'not json',
      '{}',
      '{"Statement":[]}',
      '{"Statement":[{"Resource":"x","Condition":{}}]}',
      '{"Statement":[{"Resource":"x","Condition":{"DateLessThan":{"AWS:EpochTime":"1"}}}]}',
      '{"Statement":[{"Resource":1,"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}',
    ]) {
      expect(parsePolicyDocument(text)).toBeUndefined();
    }
  });
});

describe('an upload grant', () => {
  it('admits its own host under its own prefix until it expires', () => {
    fc.assert(
      fc.property(hostId, seq, lifetime, (id, n, seconds) => {
        const grant = grantFor(id, seconds);
        expect(grant.resource).toBe(`${DOMAIN}/snapshots/${id}/*`);
        const verdict = verifySignedUrl({ url: urlFor(grant, id, n) }, trusted, NOW);
        expect(verdict).toMatchObject({ ok: true, keyPairId: key.keyPairId });
        const justBefore = new Date((Math.floor(NOW.getTime() / 1000) + seconds - 1) * 1000);
        expect(verifySignedUrl({ url: urlFor(grant, id, n) }, trusted, justBefore).ok).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it("refuses any other host's prefix with a valid grant (resource-mismatch)", () => {
    fc.assert(
      fc.property(hostId, hostId, seq, (id, target, n) => {
        fc.pre(id !== target);
        const verdict = verifySignedUrl({ url: urlFor(grantFor(id), target, n) }, trusted, NOW);
        // "h1" must not reach "h10" either: the resource ends in "/*", not "*".
        expect(verdict).toMatchObject({ ok: false, reason: 'resource-mismatch' });
      }),
      { numRuns: 50 },
    );
    expect(verifySignedUrl({ url: urlFor(grantFor('h1'), 'h10', 1) }, trusted, NOW)).toMatchObject({
      reason: 'resource-mismatch',
    });
  });

  it('refuses a request at or after DateLessThan', () => {
    fc.assert(
      fc.property(hostId, lifetime, fc.integer({ min: 0, max: 10 * DAY }), (id, seconds, late) => {
        const grant = grantFor(id, seconds);
        const at = new Date(Date.parse(grant.expiresAt) + late * 1000);
        expect(verifySignedUrl({ url: urlFor(grant, id, 1) }, trusted, at)).toMatchObject({
          ok: false,
          reason: 'expired',
        });
      }),
      { numRuns: 30 },
    );
  });

  it('refuses a policy whose resource or expiry was changed after signing (bad-signature)', () => {
    fc.assert(
      fc.property(hostId, hostId, fc.integer({ min: 1, max: 10 * 365 * DAY }), (id, target, extra) => {
        const grant = grantFor(id);
        const widened = tampered(grant, (statement) => {
          statement.Resource = `${DOMAIN}/snapshots/${target === id ? '' : target}*`;
        });
        expect(verifySignedUrl({ url: urlFor(grant, target, 1, widened) }, trusted, NOW)).toMatchObject({
          ok: false,
          reason: 'bad-signature',
        });
        const extended = tampered(grant, (statement) => {
          const condition = statement.Condition as { DateLessThan: { 'AWS:EpochTime': number } };
          condition.DateLessThan['AWS:EpochTime'] += extra;
        });
        expect(verifySignedUrl({ url: urlFor(grant, id, 1, extended) }, trusted, NOW)).toMatchObject({
          ok: false,
          reason: 'bad-signature',
        });
      }),
      { numRuns: 30 },
    );
  });

  it('refuses a signature with any byte changed', () => {
    const grant = grantFor('h1');
    const signature = fromCloudFrontBase64(grant.signature) as Buffer;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: signature.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (index, flip) => {
          const changed = Buffer.from(signature);
          changed[index] = (changed[index] as number) ^ flip;
          const signed = { ...grant, signature: toCloudFrontBase64(changed) };
          expect(verifySignedUrl({ url: urlFor(grant, 'h1', 1, signed) }, trusted, NOW)).toMatchObject({
            ok: false,
            reason: 'bad-signature',
          });
        },
      ),
      { numRuns: 50 },
    );
  });

  it('refuses a policy signed by a key outside the trusted key group, or naming an unknown key', () => {
    const forged = issueUploadGrant({
      url: DOMAIN,
      hostId: 'h1',
      now: NOW,
      lifetimeSeconds: DAY,
      key: { keyPairId: key.keyPairId, privateKey: other.privateKey },
    });
    expect(verifySignedUrl({ url: urlFor(forged, 'h1', 1) }, trusted, NOW)).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    });
    const unknown = { ...grantFor('h1'), keyPairId: 'K0000000000000' };
    expect(verifySignedUrl({ url: urlFor(unknown, 'h1', 1) }, trusted, NOW)).toMatchObject({
      ok: false,
      reason: 'unknown-key',
    });
  });

  it('refuses a URL missing any of Policy, Signature or Key-Pair-Id', () => {
    const url = new URL(urlFor(grantFor('h1'), 'h1', 1));
    for (const name of ['Policy', 'Signature', 'Key-Pair-Id']) {
      const without = new URL(url);
      without.searchParams.delete(name);
      expect(verifySignedUrl({ url: without.href }, trusted, NOW)).toMatchObject({
        ok: false,
        reason: 'missing-parameters',
      });
    }
  });

  it("matches the URL minus CloudFront's own parameters, every other query byte kept as sent", () => {
    const epoch = Math.floor(NOW.getTime() / 1000);
    const exact = `${DOMAIN}/snapshots/h1/1.json?a=b%20c`;
    const signed = signCustomPolicy({ resource: exact, expiresAt: epoch + DAY }, key);
    const query = `Policy=${signed.policy}&Signature=${signed.signature}&Key-Pair-Id=${signed.keyPairId}`;
    expect(verifySignedUrl({ url: `${exact}&${query}` }, trusted, NOW).ok).toBe(true);
    expect(verifySignedUrl({ url: `${DOMAIN}/snapshots/h1/1.json?${query}&a=b%20c` }, trusted, NOW).ok).toBe(
      true,
    );
    for (const other of ['?a=b+c', '?a=b%20c&d=e', '']) {
      const url = `${DOMAIN}/snapshots/h1/1.json${other}${other ? '&' : '?'}${query}`;
      expect(verifySignedUrl({ url }, trusted, NOW)).toMatchObject({ reason: 'resource-mismatch' });
    }
  });

  it('is checked against DateGreaterThan and IpAddress when the policy has them', () => {
    const resource = `${DOMAIN}/snapshots/h1/*`;
    const epoch = Math.floor(NOW.getTime() / 1000);
    const signed = signCustomPolicy(
      { resource, expiresAt: epoch + DAY, notBefore: epoch + 60, sourceIp: '192.0.2.0/24' },
      key,
    );
    const url = signedObjectUrl(DOMAIN, snapshotKey('h1', 1), signed);
    const later = new Date(NOW.getTime() + 120_000);
    expect(verifySignedUrl({ url, sourceIp: '192.0.2.7' }, trusted, NOW)).toMatchObject({
      reason: 'not-yet-valid',
    });
    expect(verifySignedUrl({ url, sourceIp: '192.0.2.7' }, trusted, later).ok).toBe(true);
    expect(verifySignedUrl({ url, sourceIp: '::ffff:192.0.2.200' }, trusted, later).ok).toBe(true);
    for (const sourceIp of ['192.0.3.7', '10.0.0.1', undefined]) {
      expect(verifySignedUrl({ url, ...(sourceIp ? { sourceIp } : {}) }, trusted, later)).toMatchObject({
        reason: 'ip-mismatch',
      });
    }
  });

  it('is made once per issuer key load, and a failed load is tried again', async () => {
    let loads = 0;
    const issuer = uploadGrantIssuer({
      url: DOMAIN,
      loadKey: async () => {
        loads += 1;
        if (loads === 1) throw new Error('parameter not readable');
        return key;
      },
    });
    await expect(issuer.issue('h1', NOW)).rejects.toThrow(/not readable/);
    const first = await issuer.issue('h1', NOW);
    await issuer.issue('h2', NOW);
    expect(loads).toBe(2);
    expect(Date.parse(first.expiresAt) - NOW.getTime()).toBe(30 * DAY * 1000);
  });
});

describe('resource wildcards', () => {
  const text = fc.string({
    unit: fc.constantFrom('a', 'b', '.', '/', '(', '[', '\\', '$', '^'),
    maxLength: 12,
  });

  it('match a literal only exactly, treating regular-expression characters as themselves', () => {
    fc.assert(
      fc.property(text, text, (resource, url) => {
        expect(resourceMatches(resource, url)).toBe(resource === url);
      }),
    );
  });

  it('let "*" stand for any run of characters and "?" for exactly one', () => {
    fc.assert(
      fc.property(text, text, fc.string({ maxLength: 8 }), (before, after, middle) => {
        expect(resourceMatches(`${before}*${after}`, `${before}${middle}${after}`)).toBe(true);
        expect(resourceMatches(`${before}?${after}`, `${before}${middle}${after}`)).toBe(
          [...middle].length === 1,
        );
      }),
    );
  });
});

describe('checked by a tool that is not node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetfold-cdn-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('openssl verifies the signature as RSA-SHA1 over the decoded policy, decoded as AWS documents', () => {
    const grant = grantFor('h1');
    const decode = (text: string) =>
      execFileSync('sh', ['-c', `printf %s "$1" | tr -- '-_~' '+=/' | base64 -d`, 'sh', text]);
    const policy = decode(grant.policy);
    expect(JSON.parse(policy.toString('utf8')).Statement[0].Resource).toBe(`${DOMAIN}/snapshots/h1/*`);
    writeFileSync(join(dir, 'policy.json'), policy);
    writeFileSync(join(dir, 'policy.sig'), decode(grant.signature));
    writeFileSync(join(dir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    const out = execFileSync('openssl', [
      'dgst',
      '-sha1',
      '-verify',
      join(dir, 'public.pem'),
      '-signature',
      join(dir, 'policy.sig'),
      join(dir, 'policy.json'),
    ]);
    expect(out.toString()).toMatch(/Verified OK/);
  });
});
