import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../cli/io.ts';
import { run } from '../cli/main.ts';
import { type ApiDeps, createApiHandler } from '../functions/api/handler.ts';
import { generatedDocuments } from '../functions/api/openapi.ts';
import { type ApiServer, startApiServer } from '../infra/local/api-server.ts';
import type { Rollout } from '../shared/groups/model.ts';
import { commandRollout } from '../shared/rollouts/rollout-service.ts';
import {
  FakeCipher,
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './support/memory-stores.ts';

/*
 * The CLI in-process against the real api handler served over real HTTP (the local API Gateway stand-in),
 * with in-memory stores behind it.
 */

const REPO = resolve(import.meta.dirname, '..');
const TOKEN = 'cli-test-token';
const HOSTS = 105;

let server: ApiServer;
let events: MemoryEventStore;
let documents: MemoryDocumentStore;
let reconcile: RecordingReconcileStarter;
let ids = 0;

beforeAll(async () => {
  documents = new MemoryDocumentStore();
  events = new MemoryEventStore();
  reconcile = new RecordingReconcileStarter();
  const deps: ApiDeps = {
    hosts: new MemoryHostStore(),
    events,
    documents,
    reconcile,
    cipher: new FakeCipher(),
    now: () => new Date(),
    newSecret: () => 'secret',
    newId: () => `id${++ids}`,
    published: generatedDocuments(),
  };
  server = await startApiServer({ handler: createApiHandler(deps), token: TOKEN });
  // More hosts than the API's largest page, so listing must follow the cursor.
  for (let index = 1; index <= HOSTS; index += 1) {
    const hostId = `h-${String(index).padStart(3, '0')}`;
    const role = index % 5 === 0 ? 'lb' : 'media';
    const response = await fetch(`${server.url}/hosts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hostId, group: 'demo', hostType: role, roles: [role] }),
    });
    if (response.status !== 201) throw new Error(`registering ${hostId}: ${response.status}`);
  }
});

afterAll(async () => {
  await server?.stop();
});

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(argv: string[], overrides: Partial<CliIo> = {}): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: {
      write: (text) => {
        stdout += text;
      },
    },
    stderr: {
      write: (text) => {
        stderr += text;
      },
    },
    env: { FLEETFOLD_API: server.url, FLEETFOLD_TOKEN: TOKEN },
    cwd: REPO,
    ...overrides,
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

describe('fleetfold hosts', () => {
  it('lists every registered host with --output json, across pages', async () => {
    const { code, stdout, stderr } = await cli(['hosts', '--output', 'json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const hosts = (JSON.parse(stdout) as { hosts: { hostId: string }[] }).hosts;
    expect(hosts).toHaveLength(HOSTS);
    expect(hosts[0]?.hostId).toBe('h-001');
    expect(hosts.at(-1)?.hostId).toBe('h-105');
  });

  it('passes filters to the API and prints a table', async () => {
    const { code, stdout } = await cli(['hosts', '--role', 'lb', '--status', 'pending']);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^HOST\s+GROUP\s+TYPE\s+ROLE\s+STATUS/);
    expect(lines).toHaveLength(1 + HOSTS / 5);
    expect(lines[1]).toMatch(/^h-005\s+demo\s+lb\s+lb\s+pending\b/);
  });

  it('joins the XML pages into one document', async () => {
    const { code, stdout } = await cli(['hosts', '-o', 'xml']);
    expect(code).toBe(0);
    expect(stdout.startsWith('<?xml version="1.0" encoding="UTF-8"?><hosts><host>')).toBe(true);
    expect(stdout.trimEnd().endsWith('</host></hosts>')).toBe(true);
    expect(stdout.match(/<host>/g)).toHaveLength(HOSTS);
    expect(stdout).not.toContain('<next>');
  });

  it('reads the endpoint and token from .fleetfold/endpoints.json in the current directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetfold-cli-int-'));
    try {
      await mkdir(join(dir, '.fleetfold'));
      await writeFile(
        join(dir, '.fleetfold', 'endpoints.json'),
        JSON.stringify({ api: server.url, token: TOKEN }),
      );
      const { code, stdout } = await cli(['hosts', '--group', 'demo', '-o', 'json'], { env: {}, cwd: dir });
      expect(code).toBe(0);
      expect((JSON.parse(stdout) as { hosts: unknown[] }).hosts).toHaveLength(HOSTS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('API errors', () => {
  it("fails with exit code 1 and prints the problem's title and detail", async () => {
    const { code, stdout, stderr } = await cli(['group', 'nope']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^error: Not Found: .*nope/);
  });

  it('fails with exit code 1 when the API refuses the query', async () => {
    const { code, stderr } = await cli(['hosts', '--status', 'sleeping']);
    expect(code).toBe(1);
    expect(stderr).toContain('Bad Request');
    expect(stderr).toContain('status');
  });

  it('fails with exit code 1 on a wrong token, saying so', async () => {
    const { code, stderr } = await cli(['hosts', '--token', 'wrong']);
    expect(code).toBe(1);
    expect(stderr).toContain('Unauthorized: the bearer token is not the one');
  });
});

describe('groups and rollouts', () => {
  it('applies a definition file, then lists the group', async () => {
    const applied = await cli(['apply', '-f', 'events/groups/demo-telephony.yaml']);
    expect(applied).toEqual({ code: 0, stdout: 'group demo created (ETag "1")\n', stderr: '' });

    const again = await cli(['apply', '-f', 'events/groups/demo-telephony.yaml']);
    expect(again.stdout).toBe('group demo unchanged (ETag "1")\n');

    const listed = await cli(['groups']);
    expect(listed.code).toBe(0);
    const [header, row, ...rest] = listed.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^NAME\s+STATE\s+VERSION\s+HOSTS\s+HOST TYPES/);
    expect(row).toMatch(/^demo\s+stopped\s+1\s+\d+\s+\S*media×2/);
    expect(rest).toEqual([]);

    const json = JSON.parse((await cli(['groups', '-o', 'json'])).stdout) as { groups: { name: string }[] };
    expect(json.groups.map((group) => group.name)).toEqual(['demo']);
  });

  it('shows one group, as a table and as the XML the API sends', async () => {
    const table = await cli(['group', 'demo']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^name\s+demo$/m);
    expect(table.stdout).toMatch(/^HOST TYPE\s+ROLES\s+INSTANCE\s+DESIRED/m);
    expect(table.stdout).toMatch(/^media\s+media\s+c7g\.xlarge\s+2\b/m);
    const xml = await cli(['group', 'demo', '-o', 'xml']);
    expect(xml.stdout).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?><group><name>demo<\/name>/);
  });

  it('applies a directory in name order, reporting a refused file and still applying the rest', async () => {
    const { code, stdout, stderr } = await cli(['apply', '-f', 'events/groups']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: .*cyclic\.yaml: Bad Request: .*→/m);
    expect(stdout).toMatch(/^group demo (unchanged|updated) \(ETag "\d+"\)$/m);
  });

  it('starts a group and runs a rollout through to the end while watching it', async () => {
    const started = await cli(['start', 'demo']);
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(/^group demo: running \(reconcile \S+\)\n$/);

    const created = await cli(['rollout', 'demo', 'media', '--version', '2.2.0', '--select', 'max(1, 50%)']);
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    expect((await documents.get<Rollout>('rollout', id))?.body).toMatchObject({
      service: 'media',
      version: '2.2.0',
      select: 'max(1, 50%)',
    });

    const status = await cli(['rollout', 'status', id]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^id\\s+${id}$`, 'm'));
    expect(status.stdout).toMatch(/^service\s+media$/m);

    // Plays the reconcile's part between polls: each step rewrites the rollout document.
    const steps: Partial<Rollout>[] = [
      {
        status: 'running',
        waves: [
          { index: 0, hosts: ['m-1'], status: 'running' },
          { index: 1, hosts: ['m-2'], status: 'pending' },
        ],
        hosts: { done: [], pending: ['m-1', 'm-2'], failed: [] },
      },
      {
        waves: [
          { index: 0, hosts: ['m-1'], status: 'done' },
          { index: 1, hosts: ['m-2'], status: 'running' },
        ],
        hosts: { done: ['m-1'], pending: ['m-2'], failed: [] },
      },
      {
        status: 'succeeded',
        waves: [
          { index: 0, hosts: ['m-1'], status: 'done' },
          { index: 1, hosts: ['m-2'], status: 'done' },
        ],
        hosts: { done: ['m-1', 'm-2'], pending: [], failed: [] },
      },
    ];
    const advance = async () => {
      const step = steps.shift();
      if (!step) throw new Error('watched past the final status');
      const stored = await documents.get<Rollout>('rollout', id);
      if (!stored) throw new Error(`no rollout ${id}`);
      await documents.put('rollout', id, { ...stored.body, ...step }, stored.version, new Date());
    };
    await advance();
    const watched = await cli(['rollout', 'status', id, '--watch'], { sleep: advance });
    expect(watched.stderr).toBe('');
    expect(watched.code).toBe(0);
    expect(watched.stdout.split('\n')).toEqual([
      '[--------------------] 0/2 hosts  wave 1/2 ▶·  running',
      '[##########----------] 1/2 hosts  wave 2/2 ✔▶  running',
      '[####################] 2/2 hosts  wave 2/2 ✔✔  succeeded',
      '',
    ]);
  });

  it('aborts a rollout, and a watch of it then exits 1 naming the outcome', async () => {
    const created = await cli(['rollout', 'demo', 'db', '--version', '14']);
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    const aborted = await cli(['rollout', 'abort', id]);
    // Abort turns the rollout to reverting; the run it starts puts back what it changed, then calls it aborted.
    expect(aborted).toMatchObject({ code: 0, stdout: `rollout ${id}: reverting\n` });
    // The reconcile here only records what it is asked: it was asked, so play its end of the revert.
    expect(reconcile.requests.at(-1)).toMatchObject({ rolloutId: id });
    await commandRollout({ events, documents, now: () => new Date() }, id, {
      type: 'FinishRevert',
      at: new Date(),
    });
    const watched = await cli(['rollout', 'status', id, '--watch']);
    expect(watched.code).toBe(1);
    expect(watched.stderr).toContain(`rollout ${id} ended aborted`);
  });

  it('applies a changed definition to the running group and names the rollout that carries the change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetfold-apply-'));
    try {
      const text = await readFile(join(REPO, 'events/groups/demo-telephony.yaml'), 'utf8');
      const file = join(dir, 'demo.yaml');
      await writeFile(file, text.replace('version: 1.4.0', 'version: 1.4.1'));
      const applied = await cli(['apply', '-f', file]);
      expect(applied.code).toBe(0);
      const [line, rollout, ...rest] = applied.stdout.split('\n');
      expect(line).toMatch(/^group demo updated \(ETag "\d+"\)$/);
      const id = /^ {2}rolls out as (\S+): fleetfold rollout status \1 --watch$/.exec(rollout ?? '')?.[1];
      expect((await documents.get<Rollout>('rollout', id ?? ''))?.body).toMatchObject({
        service: 'call-router',
        version: '1.4.1',
        cause: { kind: 'declared' },
      });
      expect(rest).toEqual(['']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the installed command (cli/bin.mjs)', () => {
  const execute = promisify(execFile);

  /** Runs the launcher with this Node (22, from the `node` devDependency), from outside the repository. */
  async function launch(bin: string, argv: string[], env: Record<string, string> = {}) {
    const dir = await mkdtemp(join(tmpdir(), 'fleetfold-bin-'));
    try {
      const { stdout, stderr } = await execute(process.execPath, [bin, ...argv], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', ...env },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('prints the help and exits 0', async () => {
    const { code, stdout } = await launch(join(REPO, 'cli', 'bin.mjs'), ['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: fleetfold COMMAND');
  });

  it('exits 2 on a usage error and 1 on an API error', async () => {
    expect((await launch(join(REPO, 'cli', 'bin.mjs'), ['frobnicate'])).code).toBe(2);
    const refused = await launch(join(REPO, 'cli', 'bin.mjs'), ['group', 'nope'], {
      FLEETFOLD_API: server.url,
      FLEETFOLD_TOKEN: TOKEN,
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Not Found');
  });

  it('works through a symlink, as npm installs it, talking to the API', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetfold-link-'));
    try {
      const link = join(dir, 'fleetfold');
      await symlink(join(REPO, 'cli', 'bin.mjs'), link);
      const { code, stdout } = await launch(link, ['hosts', '--role', 'lb', '-o', 'json'], {
        FLEETFOLD_API: server.url,
        FLEETFOLD_TOKEN: TOKEN,
      });
      expect(code).toBe(0);
      expect((JSON.parse(stdout) as { hosts: unknown[] }).hosts).toHaveLength(HOSTS / 5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
