import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createTables, type TableNames } from './table-schemas.ts';

interface DynaliteOptions {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}

// dynalite ships CommonJS without type declarations.
const dynalite = createRequire(import.meta.url)('dynalite') as (options: DynaliteOptions) => Server;

export const DEFAULT_TABLE_NAMES: TableNames = {
  events: 'fleetfold-events',
  hosts: 'fleetfold-hosts',
  documents: 'fleetfold-documents',
};

export interface StartDynaliteOptions {
  /** LevelDB folder to persist to; in memory when absent. */
  path?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  tables?: TableNames;
}

export interface RunningDynalite {
  endpoint: string;
  port: number;
  tables: TableNames;
  stop(): Promise<void>;
}

/** Starts dynalite in this process on 127.0.0.1 and creates the fleetfold tables (kept if they exist). */
export async function startDynalite(options: StartDynaliteOptions = {}): Promise<RunningDynalite> {
  const tables = options.tables ?? DEFAULT_TABLE_NAMES;
  // Tables would otherwise stay CREATING for half a second each, which only slows tests and local starts down.
  const server = dynalite({
    ...(options.path ? { path: options.path } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error?: Error) => (error ? reject(error) : resolve()));
      // Keep-alive sockets from SDK clients would otherwise hold close() open until they time out.
      server.closeIdleConnections();
    });
  const client = dynamoClient(endpoint);
  try {
    await createTables(client, tables);
  } catch (error) {
    await stop();
    // A persisted store from an earlier layout: say where it is, so it can be moved away.
    if (options.path && error instanceof Error && error.message.includes('created by an earlier version'))
      throw new Error(`${error.message}; move or delete ${options.path} (the local tables) and start again`, {
        cause: error,
      });
    throw error;
  } finally {
    client.destroy();
  }
  return { endpoint, port, tables, stop };
}

/** A client for an emulator: any region and credentials do, but the SDK insists on having some. */
export function dynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
}
