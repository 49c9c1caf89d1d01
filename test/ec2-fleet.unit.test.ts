/*
 * There is no EC2 emulator: these tests pin the exact requests the adapter sends, through a mocked EC2Client.
 */
import { generateKeyPairSync } from 'node:crypto';
import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  EC2Client,
  type Instance,
  RebootInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2Fleet, type Ec2FleetOptions, launchClientToken } from '../shared/adapters/ec2-fleet.ts';
import { NotFoundError, ValidationError } from '../shared/errors.ts';
import type { LaunchRequest } from '../shared/groups/ports.ts';

const client = new EC2Client({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'a', secretAccessKey: 's' },
});
const ec2 = mockClient(client);

const options: Ec2FleetOptions = {
  client,
  bucket: 'fleetfold-snapshots',
  agentArtifactUrl: 's3://fleetfold-artifacts/agent/1.0.0.tar.gz',
  controlPublicKeyPem: generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString(),
  instanceProfile: 'arn:aws:iam::123456789012:instance-profile/fleetfold-hosts',
  stack: 'Fleetfold',
};

const request: LaunchRequest = {
  hostId: 'media-1',
  group: 'voice',
  hostType: 'media',
  roles: ['media', 'rtp'],
  instanceType: 'c7g.large',
  image: 'ami-0123456789abcdef0',
  stateVersion: 3,
  secretRef: '/fleetfold/hosts/media-1/secret',
};

function instance(id: string, hostId: string, state: NonNullable<Instance['State']>['Name']): Instance {
  return {
    InstanceId: id,
    State: { Name: state },
    Tags: [
      { Key: 'fleetfold:host-id', Value: hostId },
      { Key: 'fleetfold:group', Value: 'voice' },
    ],
  };
}

function describeFilters(call: number): DescribeInstancesCommandInput['Filters'] {
  return ec2.commandCalls(DescribeInstancesCommand)[call]?.args[0].input.Filters;
}

const liveFilters = (hostId: string) => [
  { Name: 'tag:fleetfold:host-id', Values: [hostId] },
  { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
  { Name: 'tag:fleetfold:stack', Values: ['Fleetfold'] },
];

beforeEach(() => {
  ec2.reset();
});

describe('Ec2Fleet.launch', () => {
  it('runs one tagged IMDSv2-only instance with the boot script and a token derived from host and state version', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [instance('i-1', 'media-1', 'pending')] });

    const launched = await new Ec2Fleet(options).launch(request);

    expect(launched).toEqual({ hostId: 'media-1', instanceId: 'i-1', state: 'pending' });
    expect(describeFilters(0)).toEqual(liveFilters('media-1'));
    const run = ec2.commandCalls(RunInstancesCommand);
    expect(run).toHaveLength(1);
    const input = run[0]?.args[0].input;
    const tags = [
      { Key: 'Name', Value: 'media-1' },
      { Key: 'fleetfold:group', Value: 'voice' },
      { Key: 'fleetfold:host-type', Value: 'media' },
      { Key: 'fleetfold:host-id', Value: 'media-1' },
      { Key: 'fleetfold:stack', Value: 'Fleetfold' },
    ];
    expect(input).toMatchObject({
      MinCount: 1,
      MaxCount: 1,
      ImageId: 'ami-0123456789abcdef0',
      InstanceType: 'c7g.large',
      ClientToken: launchClientToken('media-1', 3),
      IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/fleetfold-hosts' },
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
    });
    expect(input?.LaunchTemplate).toBeUndefined();
    const script = Buffer.from(input?.UserData ?? '', 'base64').toString('utf8');
    expect(script).toMatch(/^#!\/bin\/bash\n/);
    expect(script).toContain('FLEETFOLD_HOST_ID="media-1"');
    expect(script).toContain('FLEETFOLD_SECRET_PARAMETER="/fleetfold/hosts/media-1/secret"');
    expect(script).toContain('FLEETFOLD_INBOX_QUEUE="fleetfold-inbox-media-1"');
    expect(script).toContain(options.controlPublicKeyPem);
    expect(script).toContain("aws s3 cp --only-show-errors 's3://fleetfold-artifacts/agent/1.0.0.tar.gz'");
  });

  it('launches from a launch template by name or by id, and names an instance profile by name', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [instance('i-1', 'media-1', 'pending')] });
    const fleet = new Ec2Fleet({ ...options, instanceProfile: 'fleetfold-hosts' });
    const { image: _image, ...withoutImage } = request;

    await fleet.launch({ ...withoutImage, launchTemplate: 'fleetfold-media' });
    await fleet.launch({ ...withoutImage, hostId: 'media-2', launchTemplate: 'lt-0abc123' });

    const [byName, byId] = ec2.commandCalls(RunInstancesCommand).map((call) => call.args[0].input);
    expect(byName?.LaunchTemplate).toEqual({ LaunchTemplateName: 'fleetfold-media', Version: '$Default' });
    expect(byName?.ImageId).toBeUndefined();
    expect(byName?.IamInstanceProfile).toEqual({ Name: 'fleetfold-hosts' });
    expect(byId?.LaunchTemplate).toEqual({ LaunchTemplateId: 'lt-0abc123', Version: '$Default' });
  });

  it('sends the same ClientToken and the same request when a wave is retried', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    // EC2's idempotence: the repeated token returns the instance of the first call, launching nothing new.
    ec2.on(RunInstancesCommand).resolves({ Instances: [instance('i-1', 'media-1', 'running')] });
    const fleet = new Ec2Fleet({ ...options, subnetIds: ['subnet-a', 'subnet-b', 'subnet-c'] });

    const first = await fleet.launch(request);
    const retried = await new Ec2Fleet({
      ...options,
      subnetIds: ['subnet-a', 'subnet-b', 'subnet-c'],
    }).launch(request);

    expect(retried).toEqual(first);
    const [one, two] = ec2.commandCalls(RunInstancesCommand).map((call) => call.args[0].input);
    expect(two).toEqual(one);
    expect(one?.SubnetId).toMatch(/^subnet-[abc]$/);
  });

  it('returns the live instance a host already has instead of launching another', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [instance('i-old', 'media-1', 'running')] }],
    });

    const launched = await new Ec2Fleet(options).launch({ ...request, stateVersion: 4 });

    expect(launched).toEqual({ hostId: 'media-1', instanceId: 'i-old', state: 'running' });
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });

  it('rejects a request with neither an image nor a launch template, launching nothing', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const { image: _image, ...withoutImage } = request;

    await expect(new Ec2Fleet(options).launch(withoutImage)).rejects.toBeInstanceOf(ValidationError);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });

  it('fails when RunInstances returns no instance', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [] });

    await expect(new Ec2Fleet(options).launch(request)).rejects.toThrow(/returned no instance/);
  });
});

describe('launchClientToken', () => {
  it('is at most 64 characters, stable, and distinct per host and state version', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 200 }),
        fc.nat(),
        fc.string({ minLength: 1, maxLength: 200 }),
        fc.nat(),
        (hostA, versionA, hostB, versionB) => {
          const token = launchClientToken(hostA, versionA);
          expect(token.length).toBeLessThanOrEqual(64);
          expect(token).toMatch(/^[\x21-\x7e]+$/);
          expect(launchClientToken(hostA, versionA)).toBe(token);
          if (hostA !== hostB || versionA !== versionB) {
            expect(launchClientToken(hostB, versionB)).not.toBe(token);
          }
        },
      ),
    );
  });
});

describe('Ec2Fleet.terminate', () => {
  it('terminates every live instance tagged with the host id', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [instance('i-1', 'media-1', 'running')] },
        { Instances: [instance('i-2', 'media-1', 'stopped')] },
      ],
    });
    ec2.on(TerminateInstancesCommand).resolves({});

    await new Ec2Fleet(options).terminate('media-1');

    expect(describeFilters(0)).toEqual(liveFilters('media-1'));
    expect(ec2.commandCalls(TerminateInstancesCommand)[0]?.args[0].input).toEqual({
      InstanceIds: ['i-1', 'i-2'],
    });
  });

  it('does nothing when the host has no live instance (none, or already terminated)', async () => {
    // The state filter keeps terminated instances out of the answer: EC2 returns nothing live.
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });

    await new Ec2Fleet(options).terminate('media-1');

    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
  });
});

describe('Ec2Fleet.reboot', () => {
  it('reboots the running instance of the host', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [instance('i-1', 'media-1', 'running'), instance('i-2', 'media-1', 'stopping')] },
      ],
    });
    ec2.on(RebootInstancesCommand).resolves({});

    await new Ec2Fleet(options).reboot('media-1');

    expect(ec2.commandCalls(RebootInstancesCommand)[0]?.args[0].input).toEqual({ InstanceIds: ['i-1'] });
  });

  it('fails with NotFoundError when the host has no running instance', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [instance('i-1', 'media-1', 'stopped')] }],
    });

    await expect(new Ec2Fleet(options).reboot('media-1')).rejects.toBeInstanceOf(NotFoundError);
    expect(ec2.commandCalls(RebootInstancesCommand)).toHaveLength(0);
  });
});

describe('Ec2Fleet.describe', () => {
  it('follows NextToken through every page and maps EC2 states to fleet states', async () => {
    ec2
      .on(DescribeInstancesCommand, { NextToken: undefined })
      .resolves({
        Reservations: [{ Instances: [instance('i-1', 'a', 'pending'), instance('i-2', 'b', 'running')] }],
        NextToken: 'page-2',
      })
      .on(DescribeInstancesCommand, { NextToken: 'page-2' })
      .resolves({
        Reservations: [{ Instances: [instance('i-3', 'c', 'shutting-down')] }],
        NextToken: 'page-3',
      })
      .on(DescribeInstancesCommand, { NextToken: 'page-3' })
      .resolves({
        Reservations: [
          {
            Instances: [
              instance('i-4', 'd', 'terminated'),
              instance('i-5', 'e', 'stopped'),
              // Not one of ours: no host-id tag.
              { InstanceId: 'i-9', State: { Name: 'running' }, Tags: [] },
            ],
          },
        ],
      });

    const instances = await new Ec2Fleet(options).describe('voice');

    expect(instances).toEqual([
      { hostId: 'a', instanceId: 'i-1', state: 'pending' },
      { hostId: 'b', instanceId: 'i-2', state: 'running' },
      { hostId: 'c', instanceId: 'i-3', state: 'stopping' },
      { hostId: 'd', instanceId: 'i-4', state: 'terminated' },
      { hostId: 'e', instanceId: 'i-5', state: 'stopped' },
    ]);
    const calls = ec2.commandCalls(DescribeInstancesCommand).map((call) => call.args[0].input);
    expect(calls.map((input) => input.NextToken)).toEqual([undefined, 'page-2', 'page-3']);
    for (const input of calls) {
      expect(input.Filters).toEqual([
        { Name: 'tag:fleetfold:group', Values: ['voice'] },
        { Name: 'tag:fleetfold:stack', Values: ['Fleetfold'] },
      ]);
    }
  });

  it('sees every fleetfold host of the group when no stack is configured', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const { stack: _stack, ...unscoped } = options;

    expect(await new Ec2Fleet(unscoped).describe('voice')).toEqual([]);
    expect(describeFilters(0)).toEqual([{ Name: 'tag:fleetfold:group', Values: ['voice'] }]);
  });
});
