import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoClient, startDynalite } from '../shared/adapters/dynalite.ts';

describe('a persisted local store from an earlier layout', () => {
  it('fails the start naming the table, both layouts and the folder to move away', async () => {
    const path = await mkdtemp(join(tmpdir(), 'fleetfold-layout-'));
    try {
      const first = await startDynalite({ path });
      // The documents table as it was before one partition per document: pk `kind`, sk `id`.
      const client = dynamoClient(first.endpoint);
      await client.send(
        new CreateTableCommand({
          TableName: 'fleetfold-old-documents',
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'kind', AttributeType: 'S' },
            { AttributeName: 'id', AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: 'kind', KeyType: 'HASH' },
            { AttributeName: 'id', KeyType: 'RANGE' },
          ],
        }),
      );
      // Created, then ACTIVE a moment later (dynalite flips the status on a timer).
      await new Promise((resolve) => setTimeout(resolve, 200));
      client.destroy();
      await first.stop();

      const again = startDynalite({
        path,
        tables: {
          events: 'fleetfold-events',
          hosts: 'fleetfold-hosts',
          documents: 'fleetfold-old-documents',
        },
      });

      const error = await again.then(
        () => undefined,
        (failure: unknown) => failure as Error,
      );
      expect(error?.message).toContain(
        'table fleetfold-old-documents has the layout "kind:HASH,id:RANGE" but this version of fleetfold needs "key:HASH byKind(listKind:HASH,id:RANGE)"',
      );
      expect(error?.message).toContain(`move or delete ${path}`);
    } finally {
      await rm(path, { recursive: true, force: true });
    }
  });
});
