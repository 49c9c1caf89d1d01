import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { fleetControlStatements, grantFleetControl } from '../infra/constructs/fleet-permissions.ts';

type Statement = {
  Sid?: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

/** A stack holding only a host role and a controller role with the fleet grants, checked by cdk-nag as `cdk synth` does. */
function synth(acknowledged = true): { template: Template; hostRole: iam.Role; stack: Stack } {
  const app = new App();
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'FleetStack');
  const hostRole = new iam.Role(stack, 'HostRole', {
    assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
  });
  const controller = new iam.Role(stack, 'Controller', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
  });
  if (acknowledged) grantFleetControl(controller, { hostRole });
  else {
    // The same statements without the acknowledgements: cdk-nag must object.
    for (const statement of fleetControlStatements(controller, { hostRole }))
      controller.addToPrincipalPolicy(statement);
  }
  app.synth();
  return { template: Template.fromStack(stack), hostRole, stack };
}

function statements(template: Template): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies).flatMap(
    (policy) =>
      (policy as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

function bySid(template: Template, sid: string): Statement {
  const found = statements(template).find((statement) => statement.Sid === sid);
  if (!found) throw new Error(`no statement ${sid}`);
  return found;
}

const arn = (resource: string, account = true) => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':ec2:',
      { Ref: 'AWS::Region' },
      ...(account ? [':', { Ref: 'AWS::AccountId' }, `:${resource}/*`] : [`::${resource}/*`]),
    ],
  ],
});

describe('fleet control permissions', () => {
  let synthesized: ReturnType<typeof synth>;
  beforeAll(() => {
    synthesized = synth();
  }, 60_000);

  it('lets new instances and volumes be created only with this stack and a group tag, and only the fleet tag keys', () => {
    const { template } = synthesized;
    expect(bySid(template, 'LaunchTaggedHosts')).toEqual({
      Sid: 'LaunchTaggedHosts',
      Effect: 'Allow',
      Action: 'ec2:RunInstances',
      Resource: [arn('instance'), arn('volume')],
      Condition: {
        StringEquals: { 'aws:RequestTag/fleetfold:stack': 'FleetStack' },
        Null: { 'aws:RequestTag/fleetfold:group': 'false', 'aws:RequestTag/fleetfold:host-id': 'false' },
        'ForAllValues:StringEquals': {
          'aws:TagKeys': [
            'Name',
            'fleetfold:group',
            'fleetfold:host-type',
            'fleetfold:host-id',
            'fleetfold:stack',
          ],
        },
      },
    });
    expect(bySid(template, 'TagOnlyAtLaunch')).toMatchObject({
      Action: 'ec2:CreateTags',
      Resource: [arn('instance'), arn('volume')],
      Condition: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
    });
    expect(bySid(template, 'LaunchFromSharedResources').Resource).toContainEqual(arn('image', false));
  });

  it('reboots and terminates only instances tagged with this stack and a group', () => {
    const { template } = synthesized;
    expect(bySid(template, 'RebootAndTerminateOwnHosts')).toMatchObject({
      Action: ['ec2:RebootInstances', 'ec2:TerminateInstances'],
      Resource: arn('instance'),
      Condition: {
        StringEquals: { 'ec2:ResourceTag/fleetfold:stack': 'FleetStack' },
        Null: { 'ec2:ResourceTag/fleetfold:group': 'false' },
      },
    });
  });

  it('passes only the host role, and only to EC2', () => {
    const { template, hostRole, stack } = synthesized;
    const passRole = statements(template).filter((statement) =>
      ([] as string[]).concat(statement.Action).includes('iam:PassRole'),
    );
    expect(passRole).toEqual([
      {
        Sid: 'PassHostRole',
        Effect: 'Allow',
        Action: 'iam:PassRole',
        Resource: stack.resolve(hostRole.roleArn),
        Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      },
    ]);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Action: 'ec2:DescribeInstances', Resource: '*' })]),
      },
    });
  });

  it('grants no wildcard action', () => {
    const { template } = synthesized;
    for (const statement of statements(template)) {
      for (const action of ([] as string[]).concat(statement.Action)) expect(action).not.toContain('*');
    }
  });

  it('fails cdk-nag without its acknowledgements, and passes with them', () => {
    // The acknowledged stack was synthesized (with cdk-nag) before these tests ran.
    expect(synthesized.template).toBeDefined();
    expect(() => synth(false)).toThrow(/AwsSolutions-IAM5/);
  });
});
