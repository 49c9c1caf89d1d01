import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError } from '../cli/api-client.ts';
import { parseDefinitionFile } from '../cli/commands/apply.ts';
import { parseConfigPairs, parseRolloutArgs, watchRollout } from '../cli/commands/rollout.ts';
import { parseServiceArgs } from '../cli/commands/service.ts';
import { endpointsFile, resolveEndpoint } from '../cli/endpoints.ts';
import type { CliIo } from '../cli/io.ts';
import { COMMANDS, run, splitCommand } from '../cli/main.ts';
import {
  isFinal,
  ProgressDrawer,
  progressBar,
  progressCounts,
  renderProgress,
} from '../cli/render/progress.ts';
import { renderDetails, renderTable } from '../cli/render/table.ts';
import { signRequest } from '../cli/sigv4.ts';
import { UsageError } from '../cli/usage.ts';
import type { Rollout } from '../shared/groups/model.ts';

interface Captured {
  io: CliIo;
  out: () => string;
  err: () => string;
}

/** An io whose fetch fails the test if called: usage errors must be caught before any request. */
function capture(overrides: Partial<CliIo> = {}, tty = false): Captured {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: {
      write: (text) => {
        out += text;
      },
      isTTY: tty,
    },
    stderr: {
      write: (text) => {
        err += text;
      },
    },
    env: { FLEETFOLD_API: 'http://127.0.0.1:9', FLEETFOLD_TOKEN: 't' },
    cwd: tmpdir(),
    fetch: async () => {
      throw new Error('no request was expected');
    },
    sleep: async () => {},
    ...overrides,
  };
  return { io, out: () => out, err: () => err };
}

function rollout(overrides: Partial<Rollout> = {}): Rollout {
  return {
    id: 'r-1',
    group: 'demo',
    service: 'call-router',
    version: '1.5.0',
    status: 'running',
    createdAt: '2026-11-28T00:00:00.000Z',
    updatedAt: '2026-11-28T00:00:00.000Z',
    waves: [
      { index: 0, hosts: ['a', 'b'], status: 'done' },
      { index: 1, hosts: ['c', 'd'], status: 'running' },
      { index: 2, hosts: ['e'], status: 'pending' },
    ],
    hosts: { done: ['a', 'b'], pending: ['c', 'd', 'e'], failed: [] },
    ...overrides,
  };
}

describe('fleetfold command line', () => {
  it('prints the command list for --help and for help, exit code 0', async () => {
    for (const argv of [['--help'], ['help'], ['-h']]) {
      const { io, out } = capture();
      expect(await run(argv, io)).toBe(0);
      for (const command of COMMANDS) expect(out()).toContain(`  ${command.name} `);
    }
  });

  it.each(COMMANDS.map((command) => command.name))('prints the usage of %s for --help', async (name) => {
    const { io, out } = capture();
    expect(await run([name, '--help'], io)).toBe(0);
    expect(out()).toMatch(new RegExp(`fleetfold ${name}\\b`));
    const viaHelp = capture();
    expect(await run(['help', name], viaHelp.io)).toBe(0);
    expect(viaHelp.out()).toBe(out());
  });

  it.each([
    [[], 'no command given'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['--bogus', 'hosts'], 'unknown option --bogus'],
    [['hosts', '--bogus'], "Unknown option '--bogus'"],
    [['hosts', 'extra'], 'expected no arguments, got "extra"'],
    [['hosts', '--output', 'toml'], '--output must be table, json, yaml or xml, got "toml"'],
    [['hosts', '--version', '1.0'], '--version needs --service'],
    [['hosts', '--role'], "Option '--role <value>' argument missing"],
    [['group'], 'expected NAME, got none'],
    [['start', 'a', 'b'], 'expected GROUP, got "a" "b"'],
    [['apply'], '-f FILE|DIR is required'],
    [['apply', 'x.yaml'], 'name files with -f'],
    [['apply', '-f', 'does-not-exist.yaml'], 'no such file or directory'],
    [['rollout', 'demo', 'call-router'], 'give --version V, --config KEY=VALUE, or both'],
    [['rollout', 'demo', 'call-router', '--config', 'novalue'], '--config wants KEY=VALUE, got "novalue"'],
    [['rollout', 'status'], 'expected ID, got none'],
    [['rollout', 'status', 'r-1', '--watch', '-o', 'json'], '--watch draws a progress bar'],
    [['rollout', 'pause', 'r-1', '--watch'], "Unknown option '--watch'"],
  ])('rejects %j with exit code 2 and says why', async (argv, message) => {
    const { io, out, err } = capture();
    expect(await run(argv, io)).toBe(2);
    expect(err()).toContain(message);
    expect(err()).toContain('--help');
    expect(out()).toBe('');
  });

  it('lets connection and output options come before the command', () => {
    expect(splitCommand(['--api', 'http://x', '-o=json', 'hosts', '--role', 'lb'])).toEqual({
      name: 'hosts',
      args: ['--api', 'http://x', '-o=json', '--role', 'lb'],
    });
    expect(splitCommand(['--token=t', 'groups'])).toEqual({ name: 'groups', args: ['--token=t'] });
  });

  it('fails with exit code 2 naming the missing endpoint when nothing configures one', async () => {
    const { io, err } = capture({ env: {}, cwd: join(tmpdir(), 'fleetfold-nowhere') });
    expect(await run(['hosts'], io)).toBe(2);
    expect(err()).toContain('no API address');
    expect(err()).toContain(join(tmpdir(), 'fleetfold-nowhere', '.fleetfold', 'endpoints.json'));
  });
});

describe('rollout arguments', () => {
  it('reads a rollout request from GROUP SERVICE and its options', () => {
    expect(
      parseRolloutArgs([
        'demo',
        'media',
        '--version',
        '2.0.0',
        '--config',
        'a=1',
        '--config',
        'b=x=y',
        '--select',
        'max(1, 20%)',
      ]),
    ).toEqual({
      kind: 'create',
      group: 'demo',
      request: { service: 'media', version: '2.0.0', config: { a: '1', b: 'x=y' }, select: 'max(1, 20%)' },
      flags: expect.any(Object),
    });
  });

  it('reads status, pause, resume and abort as subcommands taking an id', () => {
    expect(parseRolloutArgs(['status', 'r-9', '--watch'])).toMatchObject({
      kind: 'status',
      id: 'r-9',
      watch: true,
      output: 'table',
    });
    for (const verb of ['pause', 'resume', 'abort'])
      expect(parseRolloutArgs([verb, 'r-9'])).toMatchObject({ kind: 'control', verb, id: 'r-9' });
  });

  it('reads a group called "status" as a group when rollout options follow', () => {
    expect(parseRolloutArgs(['status', 'media', '--version', '3'])).toMatchObject({
      kind: 'create',
      group: 'status',
      request: { service: 'media', version: '3' },
    });
  });

  it('keeps empty config values but rejects empty keys', () => {
    expect(parseConfigPairs(['k='])).toEqual({ k: '' });
    expect(() => parseConfigPairs(['=v'])).toThrow(UsageError);
  });
});

describe('service arguments (and rollout revert)', () => {
  it('reads revert as a rollout subcommand taking an id', () => {
    expect(parseRolloutArgs(['revert', 'r-9'])).toMatchObject({ kind: 'control', verb: 'revert', id: 'r-9' });
  });

  it('reads stop, start and remove with a group, a service and an optional selector', () => {
    expect(parseServiceArgs(['stop', 'demo', 'media', '--select', '25%'])).toMatchObject({
      kind: 'operation',
      operation: 'stop',
      group: 'demo',
      service: 'media',
      select: '25%',
    });
    expect(parseServiceArgs(['remove', 'demo', 'media'])).toMatchObject({ operation: 'remove' });
    expect(parseServiceArgs(['remove', 'demo', 'media'])).not.toHaveProperty('select');
  });

  it('rejects an unknown operation and missing arguments', () => {
    expect(() => parseServiceArgs(['restart', 'demo', 'media'])).toThrow(UsageError);
    expect(() => parseServiceArgs(['stop', 'demo'])).toThrow(UsageError);
  });
});

describe('definition files', () => {
  it('reads the group name from YAML and JSON', () => {
    expect(parseDefinitionFile('g.yaml', 'name: alpha\nhostTypes: {}\n')).toMatchObject({
      name: 'alpha',
      format: 'yaml',
      definition: { name: 'alpha', hostTypes: {} },
    });
    expect(parseDefinitionFile('g.json', '{"name":"beta"}')).toMatchObject({ name: 'beta', format: 'json' });
  });

  it('rejects a file without a name, and one that does not parse, naming the file', () => {
    expect(() => parseDefinitionFile('/d/g.yaml', 'hostTypes: {}\n')).toThrow(/\/d\/g\.yaml has no "name"/);
    expect(() => parseDefinitionFile('/d/g.json', '{name:')).toThrow(/\/d\/g\.json is not valid JSON/);
  });
});

describe('table rendering', () => {
  const columns = [
    { header: 'NAME', value: (row: { name?: string; count?: number }) => row.name },
    {
      header: 'COUNT',
      value: (row: { name?: string; count?: number }) => row.count,
      align: 'right' as const,
    },
    { header: 'NOTE', value: () => 'x' },
  ];

  it('aligns columns, right-aligns numbers and shows a missing value as "-"', () => {
    expect(renderTable(columns, [{ name: 'alpha', count: 3 }, { count: 120 }])).toBe(
      'NAME   COUNT  NOTE\nalpha      3  x\n-        120  x\n',
    );
  });

  it('keeps every row on one line', () => {
    expect(renderTable([{ header: 'A', value: () => 'one\ntwo' }], [{}])).toBe('A\none two\n');
  });

  it('starts each column at the same offset on every line, with no trailing blanks (property)', () => {
    const word = fc.stringMatching(/^[a-z0-9.@-]{1,12}$/);
    fc.assert(
      fc.property(fc.array(fc.tuple(word, word, word), { minLength: 1, maxLength: 8 }), (rows) => {
        const lines = renderTable(
          [
            { header: 'A', value: (r: [string, string, string]) => r[0] },
            { header: 'B', value: (r: [string, string, string]) => r[1] },
            { header: 'C', value: (r: [string, string, string]) => r[2] },
          ],
          rows,
        )
          .trimEnd()
          .split('\n');
        const starts = lines.map((line) =>
          [...line.matchAll(/(?:^| {2,})(\S)/g)].map((m) => (m.index ?? 0) + m[0].length - 1),
        );
        for (const line of lines) expect(line).toBe(line.trimEnd());
        for (const line of starts) expect(line).toEqual(starts[0]);
        expect(lines.slice(1).map((line) => line.split(/ +/))).toEqual(rows);
      }),
    );
  });

  it('aligns the values of a details block and leaves out undefined ones', () => {
    expect(
      renderDetails([
        ['id', 'r-1'],
        ['status', 'running'],
        ['error', undefined],
      ]),
    ).toBe('id      r-1\nstatus  running\n');
  });
});

describe('progress rendering', () => {
  it('shows hosts done of total, the running wave and one mark per wave', () => {
    expect(renderProgress(rollout(), 10)).toBe('[####------] 2/5 hosts  wave 2/3 ✔▶·  running');
  });

  it('counts failed hosts and points at the failed wave', () => {
    const failed = rollout({
      status: 'failed',
      waves: [
        { index: 0, hosts: ['a'], status: 'done' },
        { index: 1, hosts: ['b'], status: 'failed' },
      ],
      hosts: { done: ['a'], pending: [], failed: ['b'] },
    });
    expect(progressCounts(failed)).toEqual({ done: 1, failed: 1, total: 2, wave: 2, waves: 2 });
    expect(renderProgress(failed, 4)).toBe('[##--] 1/2 hosts (1 failed)  wave 2/2 ✔✘  failed');
  });

  it('names the next wave between waves and the last once all are done', () => {
    const between = rollout({
      waves: [
        { index: 0, hosts: ['a'], status: 'done' },
        { index: 1, hosts: ['b'], status: 'pending' },
      ],
    });
    expect(progressCounts(between).wave).toBe(2);
    const finished = rollout({ status: 'succeeded', waves: [{ index: 0, hosts: ['a'], status: 'done' }] });
    expect(progressCounts(finished).wave).toBe(1);
    expect(
      renderProgress(
        rollout({ status: 'pending', waves: [], hosts: { done: [], pending: [], failed: [] } }),
        4,
      ),
    ).toBe('[----] 0/0 hosts  no waves yet  pending');
  });

  it('draws a bar of the given width, filled in proportion and never past full (property)', () => {
    fc.assert(
      fc.property(fc.nat(50), fc.nat(50), fc.integer({ min: 1, max: 40 }), (a, b, width) => {
        const [done, total] = a <= b ? [a, b] : [b, a];
        const bar = progressBar(done, total, width);
        expect(bar).toHaveLength(width + 2);
        const filled = bar.split('#').length - 1;
        expect(filled).toBe(total === 0 ? 0 : Math.round((done / total) * width));
        expect(progressBar(done + 1, total, width).split('#').length - 1).toBeGreaterThanOrEqual(filled);
      }),
    );
  });

  it('knows which statuses end a rollout', () => {
    expect(
      ['succeeded', 'failed', 'rolled-back', 'aborted'].every((s) => isFinal(s as Rollout['status'])),
    ).toBe(true);
    expect(['pending', 'running', 'paused', 'reverting'].some((s) => isFinal(s as Rollout['status']))).toBe(
      false,
    );
  });

  it('redraws in place on a terminal and writes one line per change elsewhere', () => {
    let tty = '';
    const onTty = new ProgressDrawer({
      write: (t) => {
        tty += t;
      },
      isTTY: true,
      columns: 12,
    });
    let log = '';
    const onLog = new ProgressDrawer({
      write: (t) => {
        log += t;
      },
      isTTY: false,
    });
    for (const line of ['one', 'one', 'two', 'a much longer line']) {
      onTty.draw(line);
      onLog.draw(line);
    }
    onTty.finish();
    onLog.finish();
    expect(tty).toBe('\r\x1b[2Kone\r\x1b[2Ktwo\r\x1b[2Ka much lon…\n');
    expect(log).toBe('one\ntwo\na much longer line\n');
  });
});

describe('rollout status --watch', () => {
  /** A test double of the API port: serves successive rollout documents, one per GET. */
  function serving(documents: Rollout[]): { fetch: typeof fetch; requests: string[] } {
    const requests: string[] = [];
    let index = 0;
    return {
      requests,
      fetch: (async (input: string | URL | Request, init?: RequestInit) => {
        requests.push(`${init?.method} ${String(input)}`);
        const document = documents[Math.min(index, documents.length - 1)];
        index += 1;
        return new Response(JSON.stringify(document), { status: 200 });
      }) as typeof fetch,
    };
  }

  it('polls until a final status, printing one line per change when not on a terminal', async () => {
    const api = serving([
      rollout(),
      rollout(),
      rollout({
        status: 'succeeded',
        waves: rollout().waves.map((wave) => ({ ...wave, status: 'done' as const })),
        hosts: { done: ['a', 'b', 'c', 'd', 'e'], pending: [], failed: [] },
      }),
    ]);
    let sleeps = 0;
    const { io, out } = capture({
      fetch: api.fetch,
      sleep: async () => {
        sleeps += 1;
      },
    });
    expect(await run(['rollout', 'status', 'r-1', '--watch'], io)).toBe(0);
    expect(api.requests).toEqual(Array(3).fill('GET http://127.0.0.1:9/rollouts/r-1'));
    expect(sleeps).toBe(2);
    expect(out().split('\n')).toEqual([
      '[########------------] 2/5 hosts  wave 2/3 ✔▶·  running',
      '[####################] 5/5 hosts  wave 3/3 ✔✔✔  succeeded',
      '',
    ]);
  });

  it('exits 1 naming the outcome when the rollout ends other than succeeded', async () => {
    const api = serving([rollout({ status: 'rolled-back', error: 'wave 2 did not converge' })]);
    const { io, err } = capture({ fetch: api.fetch });
    expect(await run(['rollout', 'status', 'r-1', '-w'], io)).toBe(1);
    expect(err()).toBe('rollout r-1 ended rolled-back: wave 2 did not converge\n');
  });

  it('goes on watching a reverting rollout until it ends aborted', async () => {
    const revert = { outcome: 'aborted' as const, reason: 'operator: abort' };
    const api = serving([
      rollout({ status: 'reverting', revert }),
      rollout({ status: 'reverting', revert }),
      rollout({ status: 'aborted', revert }),
    ]);
    const { io, err } = capture({ fetch: api.fetch, sleep: async () => {} });
    expect(await run(['rollout', 'status', 'r-1', '-w'], io)).toBe(1);
    expect(api.requests).toHaveLength(3);
    expect(err()).toBe('rollout r-1 ended aborted\n');
  });

  it('returns the final rollout', async () => {
    const api = serving([rollout({ status: 'aborted' })]);
    const { io } = capture({ fetch: api.fetch });
    const client = new ApiClient(
      { api: 'http://x', auth: { kind: 'bearer', token: 't' }, source: 'test' },
      api.fetch,
    );
    expect((await watchRollout(client, 'r-1', io)).status).toBe('aborted');
  });
});

describe('API errors', () => {
  function answering(status: number, body: string): typeof fetch {
    return (async () => new Response(body, { status })) as typeof fetch;
  }
  const endpoint = { api: 'http://api.test', auth: { kind: 'bearer' as const, token: 't' }, source: 'test' };

  it('turns a problem document into an ApiError with its title and detail', async () => {
    const client = new ApiClient(
      endpoint,
      answering(
        404,
        JSON.stringify({ type: 'x', title: 'Not Found', status: 404, detail: 'host "h" not found' }),
      ),
    );
    await expect(client.request('GET', '/hosts/h')).rejects.toThrow('Not Found: host "h" not found');
  });

  it("reads API Gateway's own refusals, which are not problem documents", async () => {
    const client = new ApiClient(endpoint, answering(403, '{"message":"Missing Authentication Token"}'));
    const error = await client.request('GET', '/x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).problem).toMatchObject({
      status: 403,
      detail: 'Missing Authentication Token',
    });
  });

  it('fails with exit code 1 naming the endpoint when the API cannot be reached', async () => {
    const refused = (async () => {
      throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    }) as typeof fetch;
    const { io, err } = capture({ fetch: refused });
    expect(await run(['groups'], io)).toBe(1);
    expect(err()).toContain('ECONNREFUSED');
    expect(err()).toContain('http://127.0.0.1:9 (from FLEETFOLD_API)');
  });
});

describe('endpoint resolution', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetfold-cli-'));
    await mkdir(join(dir, '.fleetfold'));
    await writeFile(
      join(dir, '.fleetfold', 'endpoints.json'),
      '{"api":"http://127.0.0.1:4000/","token":"file-token"}',
    );
    await mkdir(join(dir, 'state'));
    await writeFile(
      join(dir, 'state', 'endpoints.json'),
      '{"api":"http://127.0.0.1:4100","token":"state-token"}',
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads .fleetfold/endpoints.json in the current directory', async () => {
    expect(await resolveEndpoint({ flags: {}, env: {}, cwd: dir })).toEqual({
      api: 'http://127.0.0.1:4000',
      auth: { kind: 'bearer', token: 'file-token' },
      source: join(dir, '.fleetfold', 'endpoints.json'),
    });
  });

  it('reads FLEETFOLD_STATE_DIR/endpoints.json instead when that is set (relative to the cwd)', async () => {
    const env = { FLEETFOLD_STATE_DIR: 'state' };
    expect(endpointsFile(env, dir)).toBe(join(dir, 'state', 'endpoints.json'));
    expect(await resolveEndpoint({ flags: {}, env, cwd: dir })).toMatchObject({
      api: 'http://127.0.0.1:4100',
      auth: { kind: 'bearer', token: 'state-token' },
    });
  });

  it('prefers environment variables to the file and flags to both, field by field', async () => {
    const env = { FLEETFOLD_API: 'http://env:1', FLEETFOLD_TOKEN: 'env-token' };
    expect(await resolveEndpoint({ flags: {}, env, cwd: dir })).toMatchObject({
      api: 'http://env:1',
      auth: { token: 'env-token' },
      source: 'FLEETFOLD_API',
    });
    expect(await resolveEndpoint({ flags: { api: 'http://flag:2' }, env, cwd: dir })).toMatchObject({
      api: 'http://flag:2',
      auth: { token: 'env-token' },
    });
    expect(await resolveEndpoint({ flags: { api: 'http://flag:2' }, env: {}, cwd: dir })).toMatchObject({
      auth: { token: 'file-token' },
    });
  });

  it('signs with SigV4 for an API Gateway URL, in the region the URL names', async () => {
    const api = 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod';
    expect(await resolveEndpoint({ flags: { api }, env: {}, cwd: tmpdir() })).toEqual({
      api,
      auth: { kind: 'sigv4', region: 'eu-west-1' },
      source: '--api',
    });
  });

  it('rejects a missing token, a non-URL and a non-HTTP address', async () => {
    const empty = join(dir, 'state-missing');
    await expect(
      resolveEndpoint({ flags: { api: 'http://127.0.0.1:1' }, env: {}, cwd: empty }),
    ).rejects.toThrow(/no token for http:\/\/127\.0\.0\.1:1/);
    await expect(
      resolveEndpoint({ flags: { api: 'not a url', token: 't' }, env: {}, cwd: dir }),
    ).rejects.toThrow(/is not a URL/);
    await expect(
      resolveEndpoint({ flags: { api: 'ftp://x', token: 't' }, env: {}, cwd: dir }),
    ).rejects.toThrow(/must be http or https/);
  });
});

describe('SigV4 signing', () => {
  const credentials = {
    accessKeyId: 'AKIDEXAMPLE',
    secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  };
  const signingDate = new Date('2015-08-30T12:36:00Z');
  const sign = (url: string) =>
    signRequest(
      { method: 'GET', url: new URL(url), headers: {} },
      { region: 'us-east-1', service: 'service', credentials, signingDate },
    );

  // Expected values are those of AWS's published SigV4 test suite (get-vanilla, get-vanilla-query-order-key-case).
  it('matches the AWS test suite for a plain GET', async () => {
    expect(await sign('https://example.amazonaws.com/')).toEqual({
      'x-amz-date': '20150830T123600Z',
      authorization:
        'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    });
  });

  it('matches the AWS test suite for a query string, whatever its order', async () => {
    const signed = await sign('https://example.amazonaws.com/?Param2=value2&Param1=value1');
    expect(signed.authorization).toContain(
      'Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500',
    );
  });
});

describe('requests to API Gateway', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("are SigV4-signed with the AWS credentials for execute-api in the URL's region, and carry no bearer token", async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDTEST');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'secret-test');
    vi.stubEnv('AWS_SESSION_TOKEN', 'session-test');
    const sent: { url: string; headers: Record<string, string> }[] = [];
    const recording = (async (input: string | URL | Request, init?: RequestInit) => {
      sent.push({ url: String(input), headers: init?.headers as Record<string, string> });
      return new Response('{"hosts":[]}', { status: 200 });
    }) as typeof fetch;
    const api = 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod';
    const { io, out } = capture({ env: {}, fetch: recording });
    expect(await run(['hosts', '--api', api, '--role', 'lb', '-o', 'json'], io)).toBe(0);
    expect(out()).toBe('{\n  "hosts": []\n}\n');
    expect(sent).toHaveLength(1);
    expect(sent[0]?.url).toBe(`${api}/hosts?role=lb&limit=100`);
    const headers = sent[0]?.headers ?? {};
    expect(headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=accept;host;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$/,
    );
    expect(headers['x-amz-security-token']).toBe('session-test');
  });
});
