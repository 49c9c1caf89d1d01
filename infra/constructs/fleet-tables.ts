import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import {
  DOCUMENTS_TABLE,
  EVENTS_TABLE,
  HOSTS_TABLE,
  type KeyAttribute,
  type TableSchema,
} from '../../shared/adapters/table-schemas.ts';

export interface FleetTablesProps {
  /**
   * What happens to the tables when the stack is deleted. The event log is the system of record.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The event log, the host projection and the documents (groups, rollouts, desired states, plans). Their
 * layouts come from `shared/adapters/table-schemas.ts`,
 * the same data local mode creates its dynalite tables from.
 */
export class FleetTables extends Construct {
  readonly events: dynamodb.Table;
  readonly hosts: dynamodb.Table;
  /**
   * Groups, rollouts, desired host states and plans: projections kept as versioned documents. Its TTL deletes
   * the autoscaler's hour documents once past the lookback.
   */
  readonly documents: dynamodb.Table;

  constructor(scope: Construct, id: string, props: FleetTablesProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.events = tableFromSchema(this, 'Events', EVENTS_TABLE, removalPolicy);
    this.hosts = tableFromSchema(this, 'Hosts', HOSTS_TABLE, removalPolicy);
    this.documents = tableFromSchema(this, 'Documents', DOCUMENTS_TABLE, removalPolicy);
  }
}

function tableFromSchema(
  scope: Construct,
  id: string,
  schema: TableSchema,
  removalPolicy: RemovalPolicy,
): dynamodb.Table {
  const table = new dynamodb.Table(scope, id, {
    partitionKey: attribute(schema.partitionKey),
    ...(schema.sortKey ? { sortKey: attribute(schema.sortKey) } : {}),
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    encryption: dynamodb.TableEncryption.AWS_MANAGED,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    ...(schema.timeToLiveAttribute ? { timeToLiveAttribute: schema.timeToLiveAttribute } : {}),
    removalPolicy,
  });
  for (const index of schema.globalIndexes) {
    table.addGlobalSecondaryIndex({
      indexName: index.indexName,
      partitionKey: attribute(index.partitionKey),
      sortKey: attribute(index.sortKey),
      projectionType:
        index.projection === 'ALL' ? dynamodb.ProjectionType.ALL : dynamodb.ProjectionType.KEYS_ONLY,
    });
  }
  return table;
}

function attribute(key: KeyAttribute): dynamodb.Attribute {
  return {
    name: key.name,
    type: key.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER,
  };
}
