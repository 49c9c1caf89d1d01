import { createPrivateKey } from 'node:crypto';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type { PolicySigningKey } from '../cdn-policy.ts';

export interface SsmUploadSigningKeyOptions {
  ssm: SSMClient;
  /** The SecureString holding the PEM (PKCS#1 or PKCS#8) of the upload key pair's private half. */
  parameterName: string;
  /** The CloudFront public key id of its public half. */
  keyPairId: string;
}

/**
 * The CloudFront upload signing key, read from SSM: the private key never sits in the template, the
 * function's environment or the bundle, only in the parameter and in memory of the function that signs.
 */
export function ssmUploadSigningKey(options: SsmUploadSigningKeyOptions): () => Promise<PolicySigningKey> {
  return async () => {
    const { Parameter } = await options.ssm.send(
      new GetParameterCommand({ Name: options.parameterName, WithDecryption: true }),
    );
    const pem = Parameter?.Value;
    if (!pem) throw new Error(`SSM parameter ${options.parameterName} has no value`);
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'rsa') {
      throw new Error(
        `SSM parameter ${options.parameterName} holds a ${privateKey.asymmetricKeyType} key, not RSA`,
      );
    }
    return { keyPairId: options.keyPairId, privateKey };
  };
}
