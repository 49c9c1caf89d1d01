import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../agent/config.ts';
import { parseServiceList } from '../agent/facts/source.ts';

const LOCAL = {
  FLEETFOLD_MODE: 'local',
  FLEETFOLD_HOST_ID: 'router-1',
  FLEETFOLD_SECRET: 's3cret',
  FLEETFOLD_BUCKET: 'fleetfold-snapshots',
  FLEETFOLD_HOST_TYPE: 'router',
  FLEETFOLD_GROUP: 'edge',
  FLEETFOLD_ROLES: 'call-router, lb',
  FLEETFOLD_SERVICES: 'call-router@1.0.0,metrics@0.3.1',
  FLEETFOLD_S3_ENDPOINT: 'http://127.0.0.1:4566',
};

const noFile = () => {
  throw new Error('ENOENT');
};

describe('loadConfig', () => {
  it('reads a local-mode configuration with its defaults', () => {
    const config = loadConfig(LOCAL, noFile);
    expect(config).toMatchObject({
      mode: 'local',
      hostId: 'router-1',
      secret: 's3cret',
      bucket: 'fleetfold-snapshots',
      hostType: 'router',
      group: 'edge',
      roles: ['call-router', 'lb'],
      services: { 'call-router': '1.0.0', metrics: '0.3.1' },
      heartbeatSeconds: 60,
      pollSeconds: 5,
      thresholds: { load: [0.5, 0.8, 0.95], sessions: [1, 50, 200] },
      s3: { endpoint: 'http://127.0.0.1:4566', region: 'us-east-1' },
    });
    expect(config.stateDir).toContain('router-1');
    expect(loadConfig(LOCAL, noFile).seed).toBe(config.seed);
  });

  it('defaults an EC2 host to an hourly heartbeat and leaves region and host type to instance metadata', () => {
    const { FLEETFOLD_S3_ENDPOINT: _endpoint, FLEETFOLD_HOST_TYPE: _type, ...rest } = LOCAL;
    const config = loadConfig({ ...rest, FLEETFOLD_MODE: 'ec2' }, noFile);
    expect(config.heartbeatSeconds).toBe(3_600);
    expect(config.hostType).toBeUndefined();
    expect(config.s3).toEqual({});
  });

  it('reads the secret from a file', () => {
    const { FLEETFOLD_SECRET: _secret, ...rest } = LOCAL;
    const config = loadConfig({ ...rest, FLEETFOLD_SECRET_FILE: '/run/secret' }, (path) => `from ${path}\n`);
    expect(config.secret).toBe('from /run/secret');
  });

  it('reads overrides for cadence, seed and bands', () => {
    const config = loadConfig(
      {
        ...LOCAL,
        FLEETFOLD_HEARTBEAT_SECONDS: '30',
        FLEETFOLD_POLL_SECONDS: '0.5',
        FLEETFOLD_SEED: '7',
        FLEETFOLD_LOAD_BANDS: '0.6,0.9',
        FLEETFOLD_STATE_DIR: '/tmp/x',
      },
      noFile,
    );
    expect(config).toMatchObject({
      heartbeatSeconds: 30,
      pollSeconds: 0.5,
      seed: 7,
      stateDir: '/tmp/x',
      thresholds: { load: [0.6, 0.9], sessions: [1, 50, 200] },
    });
  });

  it.each([
    'FLEETFOLD_MODE',
    'FLEETFOLD_HOST_ID',
    'FLEETFOLD_BUCKET',
    'FLEETFOLD_GROUP',
    'FLEETFOLD_ROLES',
    'FLEETFOLD_HOST_TYPE',
    'FLEETFOLD_S3_ENDPOINT',
  ])('fails naming %s when it is missing', (variable) => {
    const env: Record<string, string> = { ...LOCAL };
    delete env[variable];
    expect(() => loadConfig(env, noFile)).toThrow(new ConfigError(`${variable} is not set`));
  });

  it('fails naming the secret when neither it nor its file is given', () => {
    const { FLEETFOLD_SECRET: _secret, ...rest } = LOCAL;
    expect(() => loadConfig(rest, noFile)).toThrow(/FLEETFOLD_SECRET \(or FLEETFOLD_SECRET_FILE\)/);
    expect(() => loadConfig({ ...rest, FLEETFOLD_SECRET_FILE: '/nope' }, noFile)).toThrow(
      /FLEETFOLD_SECRET_FILE/,
    );
  });

  it.each([
    [{ FLEETFOLD_MODE: 'k8s' }, /FLEETFOLD_MODE/],
    [{ FLEETFOLD_HOST_ID: 'Router 1' }, /FLEETFOLD_HOST_ID/],
    [{ FLEETFOLD_SERVICES: 'call-router' }, /FLEETFOLD_SERVICES.*name@version/],
    [{ FLEETFOLD_POLL_SECONDS: '0' }, /FLEETFOLD_POLL_SECONDS/],
    [{ FLEETFOLD_SESSION_BANDS: '50,1' }, /FLEETFOLD_SESSION_BANDS/],
    [{ FLEETFOLD_SEED: 'abc' }, /FLEETFOLD_SEED/],
  ])('rejects malformed %o', (override, message) => {
    expect(() => loadConfig({ ...LOCAL, ...override }, noFile)).toThrow(message);
  });
});

describe('parseServiceList', () => {
  it('splits name@version pairs and keeps scoped-looking names whole', () => {
    expect(parseServiceList(' a@1, b@2.0.0-rc.1 ,')).toEqual({ a: '1', b: '2.0.0-rc.1' });
  });

  it('rejects a service listed twice', () => {
    expect(() => parseServiceList('a@1,a@2')).toThrow(/twice/);
  });
});
