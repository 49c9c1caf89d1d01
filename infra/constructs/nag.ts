import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Acknowledges cdk-nag findings on a construct and everything under it, each with the reason an auditor
 * reads in the validation report. cdk-nag 3 matches exact ids, including the `[Finding]` suffix.
 */
export function acknowledge(scope: IConstruct, reasons: Readonly<Record<string, string>>): void {
  for (const [id, reason] of Object.entries(reasons)) Validations.of(scope).acknowledge({ id, reason });
}

/**
 * How cdk-nag spells a resource's ARN inside a finding id: `<LogicalId.Arn>`, the resolved `Fn::GetAtt`.
 * Deriving it keeps acknowledgements valid when a construct id (and so the logical id) changes.
 */
export function nagArn(resource: IConstruct): string {
  const cfn = resource.node.defaultChild as CfnElement | undefined;
  if (!cfn) throw new Error(`${resource.node.path} has no CloudFormation resource to name`);
  return `<${Stack.of(resource).getLogicalId(cfn)}.Arn>`;
}
