import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { SNAPSHOT_PREFIX } from '../../shared/keys.ts';
import type { FleetFunction } from './fleet-function.ts';
import { acknowledge } from './nag.ts';

export interface UploadDistributionProps {
  /** The snapshot bucket the distribution writes into (through Origin Access Control). */
  readonly bucket: s3.IBucket;
  /** Where CloudFront standard logs go (must allow ACL delivery). */
  readonly logBucket: s3.IBucket;
  /** PEM of the RSA public key whose private half signs the hosts' CloudFront policies. */
  readonly uploadPublicKeyPem: string;
  /**
   * Edge locations used; hosts upload from the regions the fleet runs in.
   * @default PriceClass.PRICE_CLASS_100
   */
  readonly priceClass?: cloudfront.PriceClass;
  /**
   * SSM SecureString (encrypted with the account's `aws/ssm` key) holding the PEM of the private key whose public
   * half is `uploadPublicKeyPem`; the operator creates it. Functions bound with `bindUploadGrants` read it to sign.
   * @default none: registration hands out no upload grant and the distribution admits nobody
   */
  readonly signingKeyParameterName?: string;
}

/**
 * An HTTPS upload path for hosts that have no AWS credentials (or sit behind a proxy that only allows
 * HTTPS to a fixed name): `PUT https://<domain>/snapshots/<hostId>/<seq>.json` through CloudFront into the
 * snapshot bucket.
 *
 * How a host authenticates: every viewer request must carry a CloudFront signature (signed URL or signed
 * cookies) made with a key in the distribution's trusted key group. The private key lives in an SSM
 * SecureString (`signingKeyParameterName`); the api function, bound with `bindUploadGrants`, reads it and, when a
 * host is registered, signs for it a CloudFront *custom policy* whose `Resource` is
 * `https://<domain>/snapshots/<hostId>/*` with an `AWS:EpochTime` expiry (shared/cdn-policy.ts), and returns
 * the resulting `Policy`/`Signature`/`Key-Pair-Id` values to that host's registration alone. CloudFront rejects any request whose URL is outside the signed resource, so a host can only PUT
 * under its own prefix. On top of that, the ingest verifies each body's HMAC with the host's own secret,
 * so a leaked policy still cannot forge another host's state.
 *
 * CloudFront reaches S3 through Origin Access Control, whose bucket-policy grant is only `s3:PutObject`
 * on `snapshots/*`: reads, lists, deletes and writes elsewhere (e.g. `rejected/`) are refused by S3 even
 * for a correctly signed request.
 */
export class UploadDistribution extends Construct {
  readonly distribution: cloudfront.Distribution;
  readonly keyGroup: cloudfront.KeyGroup;
  readonly publicKey: cloudfront.PublicKey;
  readonly signingKeyParameter?: ssm.IStringParameter;

  constructor(scope: Construct, id: string, props: UploadDistributionProps) {
    super(scope, id);

    if (props.signingKeyParameterName) {
      this.signingKeyParameter = ssm.StringParameter.fromSecureStringParameterAttributes(
        this,
        'SigningKeyParameter',
        { parameterName: props.signingKeyParameterName },
      );
    }
    this.publicKey = new cloudfront.PublicKey(this, 'UploadPublicKey', {
      encodedKey: props.uploadPublicKeyPem,
      comment: 'Verifies the per-host signed policies for snapshot uploads',
    });
    this.keyGroup = new cloudfront.KeyGroup(this, 'UploadKeyGroup', {
      items: [this.publicKey],
      comment: 'Signers trusted for snapshot uploads',
    });

    const originAccessControl = new cloudfront.S3OriginAccessControl(this, 'OriginAccessControl', {
      signing: cloudfront.Signing.SIGV4_ALWAYS,
      description: 'CloudFront writes snapshots into the snapshot bucket',
    });
    const origin = origins.S3BucketOrigin.withOriginAccessControl(
      objectsUnderPrefix(props.bucket, SNAPSHOT_PREFIX),
      { originAccessControl, originAccessLevels: [cloudfront.AccessLevel.WRITE] },
    );

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'fleetfold snapshot uploads',
      priceClass: props.priceClass ?? cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket: props.logBucket,
      logFilePrefix: 'cloudfront/',
      defaultBehavior: {
        origin,
        // ALLOW_ALL is the only method set that contains PUT; S3 refuses everything but PutObject anyway.
        allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
        cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
        trustedKeyGroups: [this.keyGroup],
      },
    });

    acknowledge(this.distribution, {
      'AwsSolutions-CFR1':
        'Hosts upload from whatever regions the fleet runs in; every request must carry a per-host CloudFront signature, which is a stronger filter than geography.',
      'AwsSolutions-CFR2':
        'Every request must carry a CloudFront signature for its own key prefix and may only PUT one small object; a WAF web ACL (us-east-1 only) adds cost without closing a gap. Add one if the fleet is exposed to abuse.',
      'AwsSolutions-CFR4':
        'The distribution uses the default *.cloudfront.net certificate, whose security policy CloudFront fixes at TLSv1; a TLSv1.2_2021 minimum needs a custom domain with an ACM certificate in us-east-1, which the operator owns. Host agents negotiate TLS 1.2+ regardless.',
    });
  }
}

/**
 * Lets `fn` sign hosts' upload grants: the base URL, the key pair id and the signing key's parameter name in
 * its environment, and read access to that one parameter. Without a signing key parameter, nothing is set.
 */
export function bindUploadGrants(fn: FleetFunction, uploads: UploadDistribution): void {
  const parameter = uploads.signingKeyParameter;
  if (!parameter) return;
  fn.function.addEnvironment('UPLOAD_URL', `https://${uploads.distribution.distributionDomainName}`);
  fn.function.addEnvironment('UPLOAD_KEY_PAIR_ID', uploads.publicKey.publicKeyId);
  fn.function.addEnvironment('UPLOAD_SIGNING_KEY_PARAMETER', parameter.parameterName);
  parameter.grantRead(fn.function);
}

/**
 * The OAC origin grants its access levels on `arnForObjects('*')`. Routing that call through the prefix
 * narrows the grant to the prefix while every other property (name, domain, policy) stays the real bucket's.
 */
function objectsUnderPrefix(bucket: s3.IBucket, prefix: string): s3.IBucket {
  return new Proxy(bucket, {
    get(target, property) {
      if (property === 'arnForObjects') {
        return (keyPattern: string) => target.arnForObjects(`${prefix}${keyPattern}`);
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
