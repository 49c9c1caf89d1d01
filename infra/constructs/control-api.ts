import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { z } from 'zod';
import { RegisterHostRequest } from '../../shared/schemas.ts';
import { acknowledge } from './nag.ts';

export interface ControlApiProps {
  /** The function behind every route (Lambda proxy integration). */
  readonly handler: lambda.IFunction;
  /**
   * @default 'v1'
   */
  readonly stageName?: string;
  /**
   * Retention of the access-log group.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly accessLogRetention?: logs.RetentionDays;
}

/** GET routes under /hosts/{id}; each is served by the same api function. */
const HOST_VIEWS = ['history', 'state', 'diff', 'desired', 'drift'] as const;
/** POST routes under /groups/{name}: lifecycle commands and rollout requests. */
const GROUP_COMMANDS = ['start', 'stop', 'rollouts'] as const;
/** POST routes under /rollouts/{id}. */
const ROLLOUT_COMMANDS = ['pause', 'resume', 'abort', 'revert'] as const;
/** POST routes under /groups/{name}/services/{service}, which DELETE removes: rollouts of one service. */
const SERVICE_COMMANDS = ['stop', 'start'] as const;

/**
 * The operator's REST API. Every method requires SigV4 (IAM) auth: operators and the CLI call it with
 * their own AWS credentials, and IAM policies decide who may call which route.
 */
export class ControlApi extends Construct {
  readonly api: apigateway.RestApi;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ControlApiProps) {
    super(scope, id);
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
    });

    this.api = new apigateway.RestApi(this, 'Api', {
      description: 'fleetfold control plane',
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      // Stage execution logging needs the account-level CloudWatch role; the API creates it.
      cloudWatchRole: true,
      deployOptions: {
        stageName: props.stageName ?? 'v1',
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: apigateway.MethodLoggingLevel.INFO,
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
      },
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.IAM },
    });

    const validator = this.api.addRequestValidator('Validator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const registerHostModel = this.api.addModel('RegisterHostModel', {
      contentType: 'application/json',
      modelName: 'RegisterHost',
      description: 'POST /hosts body, generated from shared/schemas.ts RegisterHostRequest',
      schema: apiGatewaySchema(z.toJSONSchema(RegisterHostRequest, { target: 'draft-4', io: 'input' })),
    });

    const integration = new apigateway.LambdaIntegration(props.handler, { allowTestInvoke: false });
    const withValidation = (options: apigateway.MethodOptions = {}): apigateway.MethodOptions => ({
      requestValidator: validator,
      ...options,
    });

    const hosts = this.api.root.addResource('hosts');
    hosts.addMethod('GET', integration, withValidation());
    hosts.addMethod(
      'POST',
      integration,
      withValidation({ requestModels: { 'application/json': registerHostModel } }),
    );
    const host = hosts.addResource('{id}');
    const idParameter = { 'method.request.path.id': true };
    host.addMethod('GET', integration, withValidation({ requestParameters: idParameter }));
    for (const view of HOST_VIEWS) {
      host
        .addResource(view)
        .addMethod('GET', integration, withValidation({ requestParameters: idParameter }));
    }

    const groups = this.api.root.addResource('groups');
    groups.addMethod('GET', integration, withValidation());
    const group = groups.addResource('{name}');
    const nameParameter = { 'method.request.path.name': true };
    for (const method of ['GET', 'PUT', 'DELETE']) {
      group.addMethod(method, integration, withValidation({ requestParameters: nameParameter }));
    }
    group
      .addResource('history')
      .addMethod('GET', integration, withValidation({ requestParameters: nameParameter }));
    for (const command of GROUP_COMMANDS) {
      group
        .addResource(command)
        .addMethod('POST', integration, withValidation({ requestParameters: nameParameter }));
    }
    const service = group.addResource('services').addResource('{service}');
    const serviceParameters = { ...nameParameter, 'method.request.path.service': true };
    service.addMethod('DELETE', integration, withValidation({ requestParameters: serviceParameters }));
    for (const command of SERVICE_COMMANDS) {
      service
        .addResource(command)
        .addMethod('POST', integration, withValidation({ requestParameters: serviceParameters }));
    }
    const rollout = this.api.root.addResource('rollouts').addResource('{id}');
    rollout.addMethod('GET', integration, withValidation({ requestParameters: idParameter }));
    for (const command of ROLLOUT_COMMANDS) {
      rollout
        .addResource(command)
        .addMethod('POST', integration, withValidation({ requestParameters: idParameter }));
    }

    this.api.root.addResource('alarms').addMethod('GET', integration, withValidation());

    acknowledge(this.api, {
      'AwsSolutions-APIG3':
        'Every method requires SigV4-signed requests from IAM principals of this account; a WAF web ACL would add cost without filtering callers IAM does not already refuse. Attach one if the API is exposed to untrusted networks.',
      'AwsSolutions-COG4':
        'The API is for operators and automation holding AWS credentials, so it authorizes with IAM (AWS_IAM) rather than a Cognito user pool.',
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]':
        "API Gateway's account-level logging role must be able to create log groups named by API Gateway itself; this AWS-managed policy is the documented way to grant that.",
    });
  }
}

/**
 * API Gateway models are JSON Schema draft 4 in CDK's spelling: the `$`-prefixed keywords drop the `$`.
 * Everything else zod emits (type, properties, required, pattern, minItems …) already has the same name.
 */
function apiGatewaySchema(schema: unknown): apigateway.JsonSchema {
  const rename: Record<string, string> = { $schema: 'schema', $ref: 'ref', $id: 'id' };
  const convert = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(convert);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [rename[key] ?? key, convert(inner)]),
    );
  };
  return convert(schema) as apigateway.JsonSchema;
}
