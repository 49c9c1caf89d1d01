/*
 * events/xslt/firewall.xsl run by the real xsltproc over the API's real XML: hosts registered and reporting
 * through S3 and the ingest on the embedded cloud, listed by the api handler.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { snapshotKey } from '../shared/keys.ts';
import type { MachineStateInput } from '../shared/schemas.ts';
import { signSnapshot } from '../shared/signing.ts';
import { apiEvent, eventually, registerHost, testCloud } from './support/cloud.ts';
import { machineState } from './support/fixtures.ts';

const execFileAsync = promisify(execFile);
const STYLESHEET = new URL('../events/xslt/firewall.xsl', import.meta.url).pathname;

const FLEET: Record<string, Pick<MachineStateInput, 'status' | 'ips'>> = {
  'demo-a': { status: 'running', ips: { internal: '10.0.0.1', external: '203.0.113.7' } },
  'demo-b': { status: 'running', ips: { internal: '10.0.0.2', external: 'fd00::2' } },
  'demo-c': { status: 'failed', ips: { internal: '10.0.0.3' } },
  'demo-d': { status: 'booting', ips: { internal: '10.0.0.4' } },
};

let cloud: LocalCloud;
let dir: string;

beforeAll(async () => {
  cloud = await testCloud({ ingestConfig: { heartbeatCoalesceSeconds: 0 } });
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-xslt-'));
  const hosts = new DynamoHostStore({
    client: cloud.clients.dynamodb,
    tableName: cloud.endpoints.hostsTable,
  });
  for (const [hostId, facts] of Object.entries(FLEET)) {
    const secret = await registerHost(cloud, hostId);
    const state = machineState(facts);
    const snapshot = signSnapshot(secret, { hostId, seq: 1, signedAt: new Date().toISOString(), state });
    await cloud.clients.s3.send(
      new PutObjectCommand({
        Bucket: cloud.endpoints.bucket,
        Key: snapshotKey(hostId, 1),
        Body: JSON.stringify(snapshot),
      }),
    );
  }
  await eventually(async () => {
    const records = await Promise.all(Object.keys(FLEET).map((id) => hosts.get(id)));
    return records.every((record) => record && record.lastSeq >= 1) ? true : undefined;
  }, 30_000);
}, 60_000);

afterAll(async () => {
  await cloud?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function hostsXml(query: Record<string, string>): Promise<string> {
  const response = await cloud.apiHandler(apiEvent('GET', '/hosts', { query: { ...query, format: 'xml' } }));
  expect(response.statusCode).toBe(200);
  return response.body;
}

async function xsltproc(xml: string, params: Record<string, string> = {}): Promise<string> {
  const input = join(dir, `hosts-${Math.random().toString(36).slice(2)}.xml`);
  await writeFile(input, xml);
  const args = Object.entries(params).flatMap(([name, value]) => ['--stringparam', name, value]);
  const { stdout } = await execFileAsync('xsltproc', [...args, STYLESHEET, input]);
  return stdout;
}

const accepted = (rules: string) =>
  rules
    .split('\n')
    .filter((line) => line.endsWith('-j ACCEPT'))
    .map((line) => /-s (\S+)\/32 .*--comment "([^"]+)"/.exec(line)?.slice(1, 3).join(' '));

describe('events/xslt/firewall.xsl over GET /hosts?status=running&format=xml', () => {
  it('admits exactly the running hosts, each of their IPv4 addresses, and drops the rest', async () => {
    const rules = await xsltproc(await hostsXml({ status: 'running', group: 'demo' }));
    expect(accepted(rules)).toEqual(['10.0.0.1 demo-a', '203.0.113.7 demo-a', '10.0.0.2 demo-b']);
    const lines = rules.trim().split('\n');
    expect(lines.slice(1, 4)).toEqual(['*filter', ':FLEETFOLD-HOSTS - [0:0]', '-F FLEETFOLD-HOSTS']);
    expect(lines.slice(-2)).toEqual(['-A FLEETFOLD-HOSTS -j DROP', 'COMMIT']);
    expect(rules).toContain('# skipped demo-b: an address that is not IPv4');
  });

  it('admits only running hosts even over the unfiltered list', async () => {
    const rules = await xsltproc(await hostsXml({}));
    expect(accepted(rules)).toEqual(['10.0.0.1 demo-a', '203.0.113.7 demo-a', '10.0.0.2 demo-b']);
    expect(rules).not.toContain('10.0.0.3');
    expect(rules).not.toContain('10.0.0.4');
  });

  it("restricts to a port and protocol when asked, in a chain of the caller's naming", async () => {
    const rules = await xsltproc(await hostsXml({ status: 'running' }), {
      chain: 'SIP',
      protocol: 'udp',
      port: '5060',
    });
    expect(rules).toContain(
      '-A SIP -s 10.0.0.1/32 -p udp -m udp --dport 5060 -m comment --comment "demo-a" -j ACCEPT',
    );
    expect(rules).toContain('-A SIP -j DROP');
  });

  it('refuses a paged list, whose rules would lock out the hosts of the other pages', async () => {
    const paged = await hostsXml({ status: 'running', limit: '1' });
    await expect(xsltproc(paged)).rejects.toThrow(/the host list is paged/);
  });

  it('refuses parameters that would change the meaning of a rule', async () => {
    const xml = await hostsXml({ status: 'running' });
    await expect(xsltproc(xml, { port: '22 -j ACCEPT' })).rejects.toThrow(/port must be a number/);
    await expect(xsltproc(xml, { chain: 'INPUT -j ACCEPT' })).rejects.toThrow(/chain must be/);
  });

  it('never copies a value that is not an IPv4 address into a rule', async () => {
    const hostile = (await hostsXml({ status: 'running' })).replace(
      '<internal>10.0.0.1</internal>',
      '<internal>0.0.0.0/0 -j ACCEPT</internal>',
    );
    const rules = await xsltproc(hostile);
    expect(rules).not.toContain('0.0.0.0/0');
    expect(rules).toContain('# skipped demo-a');
  });
});
