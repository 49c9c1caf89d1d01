import {
  AddTagsToResourceCommand,
  DeleteParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { SsmHostSecrets } from '../shared/adapters/ssm-host-secrets.ts';
import { ConflictError } from '../shared/errors.ts';
import { hostStream } from '../shared/events.ts';
import { type HostProvisioner, launchHost } from '../shared/groups/host-provisioning.ts';
import type { FleetInstance, FleetPort, LaunchRequest } from '../shared/groups/ports.ts';
import { ensureHostRegistered, type HostIdentity, registerHost } from '../shared/host-registration.ts';
import { FakeCipher, MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';

const NOW = new Date('2026-11-28T10:00:00.000Z');
const HOST: HostIdentity = { hostId: 'media-1', group: 'demo', hostType: 'media', roles: ['media', 'edge'] };
const KEY = 'arn:aws:kms:eu-west-1:111122223333:key/params';
const INSTANCE_ARN_PREFIX = 'arn:aws:ec2:eu-west-1:111122223333:instance/';

let events: MemoryEventStore;
let hosts: MemoryHostStore;
const cipher = new FakeCipher();

function secrets(count = { n: 0 }) {
  return () => `secret-${++count.n}`;
}

beforeEach(() => {
  events = new MemoryEventStore();
  hosts = new MemoryHostStore();
});

describe('host registration', () => {
  it('appends HostRegistered and stores the projection with the secret encrypted for that host', async () => {
    const record = await registerHost({ events, hosts, cipher }, HOST, 's3cret', NOW);

    const stream = await events.read(hostStream('media-1'));
    expect(stream.events.map((event) => event.type)).toEqual(['HostRegistered']);
    expect(await hosts.get('media-1')).toEqual(record);
    expect(record).toMatchObject({ role: 'media', status: 'pending', lastSeq: 0, version: 1 });
    expect(await cipher.decrypt(record.secretCiphertext, 'media-1')).toBe('s3cret');
  });

  it('rejects a host id that is registered already', async () => {
    await registerHost({ events, hosts, cipher }, HOST, 'first', NOW);
    await expect(registerHost({ events, hosts, cipher }, HOST, 'second', NOW)).rejects.toThrow(ConflictError);
    expect(await cipher.decrypt((await hosts.get('media-1'))?.secretCiphertext ?? '', 'media-1')).toBe(
      'first',
    );
  });

  it('registers a new host once, then hands out the same secret on every retry', async () => {
    const deps = { events, hosts, cipher };
    const newSecret = secrets();

    const first = await ensureHostRegistered(deps, HOST, newSecret, NOW);
    const again = await ensureHostRegistered(deps, HOST, newSecret, NOW);

    expect(first).toEqual({ secret: 'secret-1', outcome: 'registered' });
    expect(again).toEqual({ secret: 'secret-1', outcome: 'reused' });
    expect(await events.currentVersion(hostStream('media-1'))).toBe(1);
  });

  it('hands out one secret when two registrations of the same host race', async () => {
    const deps = { events, hosts, cipher };
    const [a, b] = await Promise.all([
      ensureHostRegistered(deps, HOST, () => 'secret-a', NOW),
      ensureHostRegistered(deps, HOST, () => 'secret-b', NOW),
    ]);

    expect(a.secret).toBe(b.secret);
    expect([a.outcome, b.outcome].filter((outcome) => outcome === 'reused')).toHaveLength(1);
    expect(await cipher.decrypt((await hosts.get('media-1'))?.secretCiphertext ?? '', 'media-1')).toBe(
      a.secret,
    );
    expect(await events.currentVersion(hostStream('media-1'))).toBe(1);
  });

  it('completes a registration that stopped between its event and its projection', async () => {
    await events.append(
      hostStream('media-1'),
      0,
      [
        {
          type: 'HostRegistered',
          eventId: 'register#media-1',
          data: { ...HOST, registeredAt: NOW.toISOString() },
        },
      ],
      NOW,
    );

    const ensured = await ensureHostRegistered({ events, hosts, cipher }, HOST, secrets(), NOW);

    expect(ensured).toEqual({ secret: 'secret-1', outcome: 'repaired' });
    const record = await hosts.get('media-1');
    expect(record).toMatchObject({ hostId: 'media-1', group: 'demo', roles: ['media', 'edge'], version: 1 });
    expect(await cipher.decrypt(record?.secretCiphertext ?? '', 'media-1')).toBe('secret-1');
    expect(await events.currentVersion(hostStream('media-1'))).toBe(1);
  });
});

describe('SSM host secrets', () => {
  const ssm = mockClient(SSMClient);
  let provisioner: SsmHostSecrets;

  beforeEach(() => {
    ssm.reset();
    provisioner = new SsmHostSecrets({
      events,
      hosts,
      cipher,
      ssm: new SSMClient({ region: 'eu-west-1' }),
      prefix: '/fleetfold/hosts/',
      keyId: KEY,
      instanceArnPrefix: INSTANCE_ARN_PREFIX,
      newSecret: secrets(),
      now: () => NOW,
    });
  });

  it('registers the host and stores its secret as a SecureString under the prefix, tagged with the host', async () => {
    ssm.on(PutParameterCommand).resolves({ Version: 1 });

    const name = await provisioner.prepare(HOST);

    expect(name).toBe('/fleetfold/hosts/media-1');
    expect(ssm.commandCalls(PutParameterCommand).map((call) => call.args[0].input)).toEqual([
      {
        Name: '/fleetfold/hosts/media-1',
        Description: 'fleetfold: snapshot signing secret of host media-1',
        Type: 'SecureString',
        KeyId: KEY,
        Value: 'secret-1',
        Tier: 'Standard',
        Tags: [{ Key: 'fleetfold:host-id', Value: 'media-1' }],
      },
    ]);
    const record = await hosts.get('media-1');
    expect(await cipher.decrypt(record?.secretCiphertext ?? '', 'media-1')).toBe('secret-1');
  });

  it('overwrites an existing parameter with the registered secret on a retry', async () => {
    ssm
      .on(PutParameterCommand, { Overwrite: true })
      .resolves({ Version: 2 })
      .on(PutParameterCommand, { Tags: [{ Key: 'fleetfold:host-id', Value: 'media-1' }] })
      .rejects(new ParameterAlreadyExists({ message: 'exists', $metadata: {} }));
    await registerHost({ events, hosts, cipher }, HOST, 'registered-earlier', NOW);

    await provisioner.prepare(HOST);

    const inputs = ssm.commandCalls(PutParameterCommand).map((call) => call.args[0].input);
    expect(inputs).toHaveLength(2);
    expect(inputs[1]).toMatchObject({ Overwrite: true, Value: 'registered-earlier', KeyId: KEY });
    expect(inputs[1]).not.toHaveProperty('Tags');
  });

  it('fails when SSM refuses the parameter, keeping the registration for the retry', async () => {
    ssm.on(PutParameterCommand).rejects(new Error('AccessDeniedException: not allowed'));

    await expect(provisioner.prepare(HOST)).rejects.toThrow(/not allowed/);

    ssm.reset();
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    await provisioner.prepare(HOST);
    expect(ssm.commandCalls(PutParameterCommand)[0]?.args[0].input.Value).toBe('secret-1');
  });

  it('tags the parameter with the ARN of the instance that may read it', async () => {
    ssm.on(AddTagsToResourceCommand).resolves({});

    await provisioner.bind('media-1', { hostId: 'media-1', instanceId: 'i-0abc123', state: 'pending' });

    expect(ssm.commandCalls(AddTagsToResourceCommand).map((call) => call.args[0].input)).toEqual([
      {
        ResourceType: 'Parameter',
        ResourceId: '/fleetfold/hosts/media-1',
        Tags: [{ Key: 'fleetfold:instance-arn', Value: `${INSTANCE_ARN_PREFIX}i-0abc123` }],
      },
    ]);
  });

  it('rejects binding to something that is not an EC2 instance id', async () => {
    await expect(
      provisioner.bind('media-1', { hostId: 'media-1', instanceId: 'local-media-1-1', state: 'running' }),
    ).rejects.toThrow(/not an EC2 instance id/);
    expect(ssm.commandCalls(AddTagsToResourceCommand)).toHaveLength(0);
  });

  it('revokes a host: its registration ends (HostRetired, no secret in the projection) and its parameter goes', async () => {
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    ssm.on(DeleteParameterCommand).resolves({});
    await provisioner.prepare(HOST);

    await provisioner.revoke('media-1');

    expect(ssm.commandCalls(DeleteParameterCommand).map((call) => call.args[0].input)).toEqual([
      { Name: '/fleetfold/hosts/media-1' },
    ]);
    const stream = await events.read(hostStream('media-1'));
    expect(stream.events.map((event) => event.type)).toEqual(['HostRegistered', 'HostRetired']);
    expect(await hosts.get('media-1')).toMatchObject({
      secretCiphertext: '',
      retired: { at: NOW.toISOString(), reason: 'secret revoked' },
    });
  });

  it('revokes idempotently: a parameter already gone and a host already retired are no errors', async () => {
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    await provisioner.prepare(HOST);
    ssm.on(DeleteParameterCommand).rejects(new ParameterNotFound({ message: 'gone', $metadata: {} }));

    await provisioner.revoke('media-1');
    await provisioner.revoke('media-1');

    expect(ssm.commandCalls(DeleteParameterCommand)).toHaveLength(2);
    const stream = await events.read(hostStream('media-1'));
    expect(stream.events.map((event) => event.type)).toEqual(['HostRegistered', 'HostRetired']);
  });

  it('revokes a host that was never registered without an error, deleting whatever parameter there is', async () => {
    ssm.on(DeleteParameterCommand).resolves({});

    await provisioner.revoke('ghost-1');

    expect(ssm.commandCalls(DeleteParameterCommand)).toHaveLength(1);
    expect(await events.currentVersion(hostStream('ghost-1'))).toBe(0);
  });

  it('fails the revocation when SSM refuses the delete, the registration ended already', async () => {
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    await provisioner.prepare(HOST);
    ssm.on(DeleteParameterCommand).rejects(new Error('AccessDeniedException: not allowed'));

    await expect(provisioner.revoke('media-1')).rejects.toThrow(/not allowed/);
    expect((await hosts.get('media-1'))?.retired).toBeDefined();
  });

  it('rejects preparing a retired host again: its id is not handed out twice', async () => {
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    ssm.on(DeleteParameterCommand).resolves({});
    await provisioner.prepare(HOST);
    await provisioner.revoke('media-1');

    await expect(provisioner.prepare(HOST)).rejects.toThrow(/media-1 was retired/);
  });
});

describe('launching a host', () => {
  const request: Omit<LaunchRequest, 'secretRef'> = {
    hostId: 'media-1',
    group: 'demo',
    hostType: 'media',
    roles: ['media'],
    instanceType: 't4g.small',
    stateVersion: 3,
  };

  function recorders() {
    const steps: string[] = [];
    const launches: LaunchRequest[] = [];
    const instance: FleetInstance = { hostId: 'media-1', instanceId: 'i-0new', state: 'pending' };
    const fleet: FleetPort = {
      launch: async (launch) => {
        steps.push('launch');
        launches.push(launch);
        return instance;
      },
      terminate: async () => {},
      reboot: async () => {},
      describe: async () => [],
    };
    const provisioner: HostProvisioner = {
      prepare: async (host) => {
        steps.push(`prepare ${host.hostId} ${host.roles.join(',')}`);
        return `/fleetfold/hosts/${host.hostId}`;
      },
      bind: async (hostId, bound) => {
        steps.push(`bind ${hostId} ${bound.instanceId}`);
      },
      revoke: async (hostId) => {
        steps.push(`revoke ${hostId}`);
      },
    };
    return { steps, launches, fleet, provisioner, instance };
  }

  it('puts the secret in place before the launch and lets only the new instance read it after', async () => {
    const { steps, launches, fleet, provisioner, instance } = recorders();

    const launched = await launchHost(fleet, provisioner, request);

    expect(launched).toEqual(instance);
    expect(steps).toEqual(['prepare media-1 media', 'launch', 'bind media-1 i-0new']);
    expect(launches).toEqual([{ ...request, secretRef: '/fleetfold/hosts/media-1' }]);
  });

  it('binds an instance a cut-short attempt launched, without launching another', async () => {
    const { steps, fleet, provisioner } = recorders();
    const existing: FleetInstance = { hostId: 'media-1', instanceId: 'i-0old', state: 'running' };

    await launchHost(fleet, provisioner, request, existing);

    expect(steps).toEqual(['bind media-1 i-0old']);
  });

  it('fails before launching when the secret cannot be stored', async () => {
    const { steps, fleet, provisioner } = recorders();
    provisioner.prepare = async () => {
      throw new Error('SSM is down');
    };

    await expect(launchHost(fleet, provisioner, request)).rejects.toThrow('SSM is down');
    expect(steps).toEqual([]);
  });
});
