import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadBootConfig, loadConfig, withSecret } from '../agent/config.ts';
import { readSecretParameter, SecretParameterError } from '../agent/secret-parameter.ts';

const NAME = '/fleetfold/hosts/media-1';
const ssm = mockClient(SSMClient);

function awsError(name: string, message = name): Error {
  return Object.assign(new Error(message), { name });
}

function recordingSleep() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

beforeEach(() => ssm.reset());

describe('readSecretParameter', () => {
  it('reads the parameter decrypted', async () => {
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: NAME, Value: 'the-secret\n' } });

    const secret = await readSecretParameter({ ssm: new SSMClient({ region: 'eu-west-1' }), name: NAME });

    expect(secret).toBe('the-secret');
    expect(ssm.commandCalls(GetParameterCommand).map((call) => call.args[0].input)).toEqual([
      { Name: NAME, WithDecryption: true },
    ]);
  });

  it('retries with doubling delays while the instance tag is not there yet', async () => {
    ssm
      .on(GetParameterCommand)
      .rejectsOnce(awsError('AccessDeniedException', 'not authorized to perform ssm:GetParameter'))
      .rejectsOnce(new ParameterNotFound({ message: 'not found', $metadata: {} }))
      .rejectsOnce(awsError('AccessDeniedException'))
      .resolves({ Parameter: { Value: 'late-secret' } });
    const { delays, sleep } = recordingSleep();
    const retries: number[] = [];

    const secret = await readSecretParameter({
      ssm: new SSMClient({ region: 'eu-west-1' }),
      name: NAME,
      sleep,
      onRetry: (attempt) => retries.push(attempt),
    });

    expect(secret).toBe('late-secret');
    expect(delays).toEqual([1000, 2000, 4000]);
    expect(retries).toEqual([1, 2, 3]);
  });

  it('never waits longer than the maximum delay', async () => {
    ssm.on(GetParameterCommand).rejects(awsError('ThrottlingException'));
    const { delays, sleep } = recordingSleep();

    await expect(
      readSecretParameter({
        ssm: new SSMClient({ region: 'eu-west-1' }),
        name: NAME,
        attempts: 6,
        firstDelayMs: 100,
        maxDelayMs: 500,
        sleep,
      }),
    ).rejects.toThrow(SecretParameterError);
    expect(delays).toEqual([100, 200, 400, 500, 500]);
  });

  it('fails naming the parameter and the missing tag when access stays denied', async () => {
    ssm.on(GetParameterCommand).rejects(awsError('AccessDeniedException', 'not authorized'));
    const { sleep } = recordingSleep();

    const failure = readSecretParameter({
      ssm: new SSMClient({ region: 'eu-west-1' }),
      name: NAME,
      attempts: 3,
      sleep,
    });

    await expect(failure).rejects.toThrow(
      /SSM parameter \/fleetfold\/hosts\/media-1 after 3 attempts \(AccessDeniedException: not authorized\).*fleetfold:instance-arn/,
    );
    await expect(failure).rejects.toMatchObject({ parameter: NAME });
    expect(ssm.commandCalls(GetParameterCommand)).toHaveLength(3);
  });

  it('fails at once, naming the parameter, on an error waiting cannot cure', async () => {
    ssm.on(GetParameterCommand).rejects(awsError('InvalidKeyId', 'the key is disabled'));
    const { delays, sleep } = recordingSleep();

    await expect(
      readSecretParameter({ ssm: new SSMClient({ region: 'eu-west-1' }), name: NAME, sleep }),
    ).rejects.toThrow(
      `cannot read the host secret from SSM parameter ${NAME}: InvalidKeyId: the key is disabled`,
    );
    expect(delays).toEqual([]);
  });

  it('rejects a parameter that holds no secret', async () => {
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: NAME, Value: '  ' } });

    await expect(
      readSecretParameter({ ssm: new SSMClient({ region: 'eu-west-1' }), name: NAME }),
    ).rejects.toThrow(`SSM parameter ${NAME} holds no secret`);
  });
});

describe('loadBootConfig: the secret parameter', () => {
  const EC2 = {
    FLEETFOLD_MODE: 'ec2',
    FLEETFOLD_HOST_ID: 'media-1',
    FLEETFOLD_BUCKET: 'fleetfold-snapshots',
    FLEETFOLD_GROUP: 'demo',
    FLEETFOLD_ROLES: 'media',
    FLEETFOLD_SECRET_PARAMETER: NAME,
  };
  const noFile = () => {
    throw new Error('ENOENT');
  };

  it('leaves an EC2 host secret to be read from its parameter', () => {
    const boot = loadBootConfig(EC2, noFile);

    expect(boot.secret).toEqual({ parameter: NAME });
    expect(withSecret(boot, 'from-ssm')).toMatchObject({ hostId: 'media-1', secret: 'from-ssm' });
  });

  it('prefers a secret given directly over the parameter', () => {
    expect(loadBootConfig({ ...EC2, FLEETFOLD_SECRET: 'override' }, noFile).secret).toEqual({
      value: 'override',
    });
  });

  it('rejects a parameter name that SSM would not accept', () => {
    expect(() => loadBootConfig({ ...EC2, FLEETFOLD_SECRET_PARAMETER: 'fleetfold hosts' }, noFile)).toThrow(
      /FLEETFOLD_SECRET_PARAMETER="fleetfold hosts" is not an SSM parameter name/,
    );
  });

  it('fails loadConfig, which cannot call SSM, when only a parameter names the secret', () => {
    expect(() => loadConfig(EC2, noFile)).toThrow(ConfigError);
    expect(() => loadConfig(EC2, noFile)).toThrow(/FLEETFOLD_SECRET_PARAMETER/);
  });

  it('names all three ways to give an EC2 host its secret when none is set', () => {
    const { FLEETFOLD_SECRET_PARAMETER: _parameter, ...none } = EC2;
    expect(() => loadBootConfig(none, noFile)).toThrow(
      'FLEETFOLD_SECRET (or FLEETFOLD_SECRET_FILE, or FLEETFOLD_SECRET_PARAMETER) is not set',
    );
  });

  it('ignores a secret parameter in local mode, which has no SSM', () => {
    const local = {
      ...EC2,
      FLEETFOLD_MODE: 'local',
      FLEETFOLD_HOST_TYPE: 'media',
      FLEETFOLD_S3_ENDPOINT: 'http://127.0.0.1:4566',
    };
    expect(() => loadBootConfig(local, noFile)).toThrow(
      'FLEETFOLD_SECRET (or FLEETFOLD_SECRET_FILE) is not set',
    );
  });
});
