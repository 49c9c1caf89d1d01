import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { z } from 'zod';
import { writePublishedDocuments } from '../../functions/api/openapi.ts';
import { PUBLISHED_FILES } from '../../functions/api/published-documents.ts';
import { ROUTE_TABLE, type RouteBody, type RouteSpec } from '../../functions/api/route-table.ts';
import { problem } from '../../shared/problem.ts';
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

let publishedDirectory: string | undefined;

/**
 * The OpenAPI document and snapshot JSON Schema, generated once per synthesis into a staging folder; the api's
 * function ships them beside its bundle (FleetFunction `besideBundle`) and serves them from there.
 */
export function publishedDocumentFiles(): string[] {
  if (!publishedDirectory) {
    publishedDirectory = mkdtempSync(join(tmpdir(), 'fleetfold-published-'));
    writePublishedDocuments(publishedDirectory);
  }
  const directory = publishedDirectory;
  return Object.values(PUBLISHED_FILES).map((file) => join(directory, file));
}

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
    // A request API Gateway refuses never reaches the function: answer it as a problem document all the same.
    const refused = problem(400, 'validation', '');
    const refusedTemplate = `{"type":${JSON.stringify(refused.type)},"title":${JSON.stringify(refused.title)},"status":400,"detail":$context.error.messageString}`;
    for (const [id, type] of [
      ['BadRequestBody', apigateway.ResponseType.BAD_REQUEST_BODY],
      ['BadRequestParameters', apigateway.ResponseType.BAD_REQUEST_PARAMETERS],
    ] as const) {
      this.api.addGatewayResponse(id, {
        type,
        statusCode: '400',
        responseHeaders: { 'Content-Type': "'application/problem+json'" },
        templates: { 'application/json': refusedTemplate },
      });
    }

    const integration = new apigateway.LambdaIntegration(props.handler, { allowTestInvoke: false });
    const models = new Map<string, apigateway.IModel>();
    const modelFor = (route: RouteSpec, body: RouteBody): apigateway.IModel => {
      const known = models.get(body.name);
      if (known) return known;
      const model = this.api.addModel(`${body.name}Model`, {
        contentType: 'application/json',
        modelName: body.name,
        description: `${route.method} ${route.path} body, generated from its zod schema (functions/api/route-table.ts)`,
        schema: apiGatewaySchema(z.toJSONSchema(body.schema, { target: 'draft-4', io: 'input' })),
      });
      models.set(body.name, model);
      return model;
    };

    // Every route of the api's own table, so API Gateway and the handler cannot disagree on what exists.
    for (const route of ROUTE_TABLE) {
      const parameters = Object.keys(route.pathParameters);
      const body = route.body && gatewayValidatesBody(route.body) ? route.body : undefined;
      resourceAt(this.api.root, route.path).addMethod(route.method, integration, {
        operationName: route.operationId,
        requestValidator: validator,
        ...(parameters.length > 0
          ? {
              requestParameters: Object.fromEntries(
                parameters.map((name) => [`method.request.path.${name}`, true]),
              ),
            }
          : {}),
        ...(body ? { requestModels: { 'application/json': modelFor(route, body) } } : {}),
      });
    }

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
 * A body API Gateway can check before the function runs: required and JSON only. Optional bodies (an empty one
 * is valid) and bodies that may be YAML are left to the function, which parses them with the same schema.
 */
function gatewayValidatesBody(body: RouteBody): boolean {
  return body.required && body.mediaTypes.length === 1 && body.mediaTypes[0] === 'application/json';
}

/** The resource of a `/a/{b}/c` path, adding the segments not made yet. */
function resourceAt(root: apigateway.IResource, path: string): apigateway.IResource {
  let resource = root;
  for (const part of path.split('/').filter((segment) => segment !== '')) {
    resource = resource.getResource(part) ?? resource.addResource(part);
  }
  return resource;
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
