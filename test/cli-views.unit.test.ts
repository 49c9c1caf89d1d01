import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ApiClient } from '../cli/api-client.ts';
import { requestTimeoutMs } from '../cli/commands/command.ts';
import { diffQuery, renderDiff } from '../cli/commands/diff.ts';
import { followEvents } from '../cli/commands/history.ts';
import { renderHost } from '../cli/commands/host.ts';
import { renderHosts } from '../cli/commands/hosts.ts';
import { bashCompletion } from '../cli/completion.ts';
import type { CliIo } from '../cli/io.ts';
import { COMMANDS, run } from '../cli/main.ts';
import { ANSI, colourEnabled, PLAIN, statusTone, visibleLength } from '../cli/render/colour.ts';
import { renderChanges, showValue } from '../cli/render/diff.ts';
import { printDocument } from '../cli/render/documents.ts';
import { renderEventLine, renderEvents, summarise } from '../cli/render/events.ts';
import { renderTable } from '../cli/render/table.ts';
import { positiveIntegerOption, secondsOption, UsageError } from '../cli/usage.ts';

type Handler = (url: URL) => unknown;

/** An io over a fake API: `answer` maps each request's URL to the JSON it gets. */
function harness(answer: Handler, overrides: Partial<CliIo> = {}) {
  const requests: URL[] = [];
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: {
      write: (text) => {
        out += text;
      },
    },
    stderr: {
      write: (text) => {
        err += text;
      },
    },
    env: { FLEETFOLD_API: 'http://127.0.0.1:9', FLEETFOLD_TOKEN: 't' },
    cwd: tmpdir(),
    fetch: (async (input: string | URL | Request) => {
      const url = new URL(String(input));
      requests.push(url);
      return new Response(JSON.stringify(answer(url)), { status: 200 });
    }) as typeof fetch,
    sleep: async () => {},
    ...overrides,
  };
  return { io, requests, out: () => out, err: () => err };
}

const host = {
  hostId: 'demo-media-1',
  group: 'demo',
  hostType: 'media',
  roles: ['media'],
  role: 'media',
  status: 'running',
  version: 7,
  lastSeq: 5,
  lastSeen: '2026-12-02T10:00:00.000Z',
  registeredAt: '2026-12-01T00:00:00.000Z',
  metrics: { load: 0.25, sessions: { voice: 3, sms: 0, mms: 0, video: 1 } },
  state: {
    ips: { internal: '10.0.0.7' },
    capacity: { sessions: 200, cpus: 2 },
    config: { values: { 'codec.preferred': 'opus' } },
    software: {
      media: { version: '2.1.0', status: 'running' },
      agent: { version: '1.0.0', status: 'failed' },
    },
    appliedStateVersion: 3,
  },
};

describe('colour', () => {
  const tty = { isTTY: true, env: {} };
  it('is on only on a terminal, and off with NO_COLOR (non-empty), --no-color or TERM=dumb', () => {
    expect(colourEnabled(tty)).toBe(true);
    expect(colourEnabled({ ...tty, isTTY: false })).toBe(false);
    expect(colourEnabled({ ...tty, isTTY: undefined })).toBe(false);
    expect(colourEnabled({ ...tty, env: { NO_COLOR: '1' } })).toBe(false);
    expect(colourEnabled({ ...tty, env: { NO_COLOR: '' } })).toBe(true);
    expect(colourEnabled({ ...tty, noColorFlag: true })).toBe(false);
    expect(colourEnabled({ ...tty, env: { TERM: 'dumb' } })).toBe(false);
  });

  it('gives statuses their meaning: running green, failed and lost red, draining and booting yellow', () => {
    expect(ANSI.paint('running', statusTone('running'))).toBe('\x1b[32mrunning\x1b[0m');
    for (const status of ['failed', 'lost', 'degraded (db)']) expect(statusTone(status)).toBe('bad');
    for (const status of ['draining', 'booting', 'pending']) expect(statusTone(status)).toBe('busy');
    expect(statusTone('something-new')).toBeUndefined();
  });

  it('never shifts a column: painted tables have the plain table visible widths (property)', () => {
    const word = fc.stringMatching(/^[a-z0-9.-]{0,8}$/);
    const status = fc.constantFrom('running', 'failed', 'draining', 'stopped', 'odd');
    fc.assert(
      fc.property(fc.array(fc.tuple(word, status, word), { minLength: 1, maxLength: 6 }), (rows) => {
        const columns = [
          { header: 'A', value: (r: [string, string, string]) => r[0] },
          {
            header: 'STATUS',
            value: (r: [string, string, string]) => r[1],
            tone: (r: [string, string, string]) => statusTone(r[1]),
          },
          { header: 'C', value: (r: [string, string, string]) => r[2], align: 'right' as const },
        ];
        const plain = renderTable(columns, rows).split('\n');
        const painted = renderTable(columns, rows, ANSI).split('\n');
        expect(painted.map(visibleLength)).toEqual(plain.map((line) => line.length));
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character is what is removed
        expect(painted.join('\n').replace(/\x1b\[[0-9;]*m/g, '')).toBe(plain.join('\n'));
      }),
    );
  });

  it('colours the hosts table on a terminal and not into a pipe, nor with NO_COLOR or --no-color', async () => {
    const list = () => ({ hosts: [host] });
    const onTty = harness(list);
    onTty.io.stdout.isTTY = true;
    await run(['hosts'], onTty.io);
    expect(onTty.out()).toContain('\x1b[32mrunning\x1b[0m');
    for (const [argv, env] of [
      [['hosts'], {}],
      [['hosts', '--no-color'], {}],
      [['--no-color', 'hosts'], {}],
      [['hosts'], { NO_COLOR: '1' }],
    ] as const) {
      const piped = harness(list);
      // Plain `hosts` goes into a pipe; the others are on a terminal and told not to colour.
      piped.io.stdout.isTTY = !(argv.length === 1 && Object.keys(env).length === 0);
      piped.io.env = { ...piped.io.env, ...env };
      expect(await run([...argv], piped.io)).toBe(0);
      expect(piped.out()).not.toContain('\x1b[');
      expect(piped.out()).toMatch(/demo-media-1\s+demo\s+media\s+media\s+running/);
    }
  });
});

describe('renderers', () => {
  it('renders changes one per line, paths aligned: old → new, + added, - removed', () => {
    const text = renderChanges([
      { op: 'changed', path: '/software/media/version', old: '2.1.0', new: '2.2.0' },
      { op: 'added', path: '/config/values/x', new: '' },
      { op: 'removed', path: '/software/lb', old: { version: '1' } },
    ]);
    expect(text.split('\n')).toEqual([
      '~ /software/media/version  2.1.0 → 2.2.0',
      '+ /config/values/x         ""',
      '- /software/lb             {"version":"1"}',
      '',
    ]);
    expect(renderChanges([])).toBe('no differences\n');
  });

  it('shows a value bare only when it cannot be misread; otherwise as JSON that parses back (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const shown = showValue(value);
        if (typeof value === 'string' && shown === value) {
          expect(value).toMatch(/^[^\s"]+$/);
          expect(() => JSON.parse(value)).toThrow();
        } else {
          expect(JSON.parse(shown)).toEqual(JSON.parse(JSON.stringify(value)));
        }
      }),
    );
  });

  it('heads a diff with what was compared', () => {
    expect(renderDiff({ hostId: 'a', from: 2, to: 5, changes: [] })).toBe('a version 2 → 5: 0 changes\n');
    expect(renderDiff({ hostId: 'a', with: 'b', changes: [{ op: 'added', path: '/x', new: 1 }] })).toBe(
      'a → b: 1 change\n+ /x  1\n',
    );
  });

  it("summarises an autoscaler's decision: the counts, what recommended it and what bound it", () => {
    const decided = (recommendedBy: string, boundBy: string) =>
      summarise({
        type: 'ScalingDecided',
        data: { hostType: 'call-router', from: 2, to: 6, recommendation: 8, recommendedBy, boundBy },
      });
    expect(decided('demand', 'max')).toBe('call-router 2 → 6: demand recommended 8 (bound by max)');
    expect(decided('demand', 'demand')).toBe('call-router 2 → 6: demand recommended 8');
  });

  it('summarises events by type, an unknown type by its data', () => {
    expect(
      summarise({
        type: 'StateObserved',
        data: {
          seq: 4,
          changes: [
            { op: 'changed', path: '/software/media/version', old: '2.1.0', new: '2.2.0' },
            { op: 'added', path: '/a', new: 1 },
            { op: 'removed', path: '/b', old: 1 },
            { op: 'removed', path: '/c', old: 1 },
          ],
        },
      }),
    ).toBe('seq 4: /software/media/version 2.1.0 → 2.2.0, /a = 1, /b removed (+1 more)');
    expect(summarise({ type: 'StateObserved', data: { seq: 5, changes: [] } })).toBe(
      'seq 5: no change (heartbeat)',
    );
    expect(
      summarise({
        type: 'StateAssigned',
        data: {
          state: { stateVersion: 3, mode: 'running', services: { media: { version: '2.2.0' } } },
          by: { rolloutId: 'r-1' },
        },
      }),
    ).toBe('state 3 running media@2.2.0 (rollout r-1)');
    expect(summarise({ type: 'Unheard', data: { a: 1 } })).toBe('{"a":1}');
    const events = [
      {
        version: 1,
        recordedAt: 't1',
        type: 'HostRegistered',
        data: { group: 'demo', hostType: 'media', roles: ['media'] },
      },
      { version: 12, recordedAt: 't2', type: 'HostLost', data: { silentSeconds: 90, reason: 'silent' } },
    ];
    expect(renderEvents(events).split('\n')).toEqual([
      'VERSION  RECORDED  TYPE            SUMMARY',
      '      1  t1        HostRegistered  group demo, type media, roles media',
      '     12  t2        HostLost        silent 90 s: silent',
      '',
    ]);
    expect(renderEventLine(events[1] as never, ANSI)).toBe(
      '     12  t2  \x1b[31mHostLost\x1b[0m  silent 90 s: silent\n',
    );
  });

  it('shows one host with its services, config and drift', () => {
    const drift = {
      assignedVersion: 4,
      observedVersion: 3,
      inSync: false,
      changes: [{ op: 'changed', path: '/software/media/version', old: '2.1.0', new: '2.2.0' }],
    };
    const text = renderHost(host, drift, PLAIN);
    expect(text).toMatch(/^host\s+demo-media-1$/m);
    expect(text).toMatch(/^status\s+running$/m);
    expect(text).toMatch(/^sessions\s+voice 3, sms 0, mms 0, video 1$/m);
    expect(text).toMatch(/^drift\s+1 difference \(assigned state 4, reports 3\)$/m);
    expect(text).toMatch(/^media\s+2\.1\.0\s+running$/m);
    expect(text).toMatch(/^codec\.preferred\s+opus$/m);
    expect(text).toContain('drift (reported → assigned):\n~ /software/media/version  2.1.0 → 2.2.0\n');
    expect(renderHost(host, undefined)).toMatch(/^drift\s+never assigned a state$/m);
    expect(renderHost(host, { ...drift, inSync: true, changes: [] })).not.toContain('reported → assigned');
  });
});

describe('flags', () => {
  it('reads seconds and whole numbers, refusing anything else by name', () => {
    expect(secondsOption('0.5', '--interval')).toBe(500);
    expect(secondsOption('30', '--timeout')).toBe(30_000);
    for (const bad of ['0', '-1', 'abc', '', '1e3', 'Infinity']) {
      expect(() => secondsOption(bad, '--timeout')).toThrow(
        `--timeout must be a positive number of seconds, got "${bad}"`,
      );
    }
    expect(positiveIntegerOption('12', '--from')).toBe(12);
    for (const bad of ['0', '1.5', '-2', 'x'])
      expect(() => positiveIntegerOption(bad, '--from')).toThrow(UsageError);
  });

  it('takes the timeout from --timeout, else FLEETFOLD_TIMEOUT, else 30 s, naming a bad one', () => {
    expect(requestTimeoutMs(undefined, {})).toBe(30_000);
    expect(requestTimeoutMs(undefined, { FLEETFOLD_TIMEOUT: '5' })).toBe(5_000);
    expect(requestTimeoutMs('2', { FLEETFOLD_TIMEOUT: '5' })).toBe(2_000);
    expect(() => requestTimeoutMs(undefined, { FLEETFOLD_TIMEOUT: 'soon' })).toThrow(
      'FLEETFOLD_TIMEOUT must be',
    );
  });

  it('asks for a diff of versions or of hosts, never both, never half', () => {
    expect(diffQuery({ from: '2', to: '5' })).toEqual({ from: '2', to: '5' });
    expect(diffQuery({ with: 'b' })).toEqual({ with: 'b' });
    expect(() => diffQuery({ from: '2', with: 'b' })).toThrow('not both');
    expect(() => diffQuery({ from: '2' })).toThrow('--to is missing');
    expect(() => diffQuery({})).toThrow('a diff needs --from N --to M');
    expect(() => diffQuery({ from: 'x', to: '2' })).toThrow('--from must be a whole number');
  });

  it.each([
    [['host'], 'expected ID, got none'],
    [['host', 'a', '--bogus'], "Unknown option '--bogus'"],
    [['history', 'a', '--count', '2'], '--count needs --follow'],
    [['history', 'a', '--follow', '-o', 'xml'], '--follow prints events as they come'],
    [['history', 'a', '--follow', '--count', '0'], '--count must be a whole number of at least 1, got "0"'],
    [['events', 'demo', '--follow', '--interval', 'fast'], '--interval must be a positive number of seconds'],
    [['diff', 'a', '--from', '1'], '--to is missing'],
    [['diff', 'a', '--from', '1', '--to', '2', '--with', 'b'], 'not both'],
    [['hosts', '--watch', '-o', 'json'], '--watch draws the table again'],
    [['hosts', '--interval', '1'], '--interval is how often --watch reads'],
    [['hosts', '--timeout', 'abc'], '--timeout must be a positive number of seconds, got "abc"'],
    [['--timeout=-3', 'hosts'], '--timeout must be a positive number of seconds, got "-3"'],
    [['completion', 'fish'], 'no completion for "fish"'],
    [['completion'], 'expected bash|zsh, got none'],
  ])('refuses %j with exit code 2, naming what is wrong, before any request', async (argv, message) => {
    const { io, out, err, requests } = harness(() => ({}));
    expect(await run(argv, io)).toBe(2);
    expect(err()).toContain(message);
    expect(out()).toBe('');
    expect(requests).toEqual([]);
  });
});

/** Every generated candidate word of the bash script: flags and commands. */
function bashCandidates(script: string): Set<string> {
  return new Set(
    [...script.matchAll(/candidates="([^"]*)"/g)].flatMap((match) => (match[1] as string).split(' ')),
  );
}

describe('completion', () => {
  const scripts = async (shell: 'bash' | 'zsh') => {
    const { io, out } = harness(() => ({}));
    expect(await run(['completion', shell], io)).toBe(0);
    return out();
  };

  it('lists every command and every flag of each, in both shells', async () => {
    const bash = await scripts('bash');
    const zsh = await scripts('zsh');
    const words = bashCandidates(bash);
    for (const command of COMMANDS) {
      expect(words).toContain(command.name);
      expect(bash).toContain(`    ${command.name})`);
      expect(zsh).toContain(`    ${command.name})`);
      expect(zsh).toContain(`'${command.name}:`);
      for (const [name, spec] of Object.entries(command.options)) {
        expect(words).toContain(`--${name}`);
        if (spec.short) expect(words).toContain(`-${spec.short}`);
        expect(zsh).toContain(`--${name}`);
      }
      for (const word of command.subcommands ?? []) expect(words).toContain(word);
    }
    // A command added to the table is completed with no other change.
    const extra = bashCompletion(
      [...COMMANDS, { ...COMMANDS[0], name: 'brand-new', options: { shiny: { type: 'boolean' } } } as never],
      {},
    );
    expect(bashCandidates(extra)).toContain('brand-new');
    expect(bashCandidates(extra)).toContain('--shiny');
  });

  it('is a script bash accepts, and completes commands, flags and output formats', async () => {
    const bash = await scripts('bash');
    execFileSync('bash', ['-n'], { input: bash });
    const complete = (words: string[]) =>
      execFileSync(
        'bash',
        [
          '-c',
          `${bash}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _fleetfold; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8' },
      ).trim();
    expect(complete(['fleetfold', '--api', 'http://x', 'hi'])).toBe('history');
    expect(complete(['fleetfold', 'history', 'h-1', '--f']).split(' ')).toEqual(['--follow']);
    expect(complete(['fleetfold', 'host', 'h-1', '-o', '']).split(' ')).toEqual([
      'table',
      'json',
      'yaml',
      'xml',
    ]);
    expect(complete(['fleetfold', 'rollout', 'st'])).toBe('status');
    expect(complete(['fleetfold', 'diff', 'a', '--with', ''])).toBe('');
  });

  const zsh = spawnSync('zsh', ['--version']).status === 0;
  it.skipIf(!zsh)('is a script zsh accepts (zsh -n)', async () => {
    execFileSync('zsh', ['-n'], { input: await scripts('zsh') });
  });
});

describe('request timeout', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    // Takes the request and never answers it.
    server = createServer(() => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('gives up after --timeout, exit code 1, naming the URL and the timeout', async () => {
    const { io, err } = harness(() => ({}), {
      fetch: undefined,
      env: { FLEETFOLD_API: url, FLEETFOLD_TOKEN: 't' },
    });
    const started = Date.now();
    expect(await run(['host', 'h-1', '--timeout', '0.3'], io)).toBe(1);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(5_000);
    expect(err()).toContain(`GET ${url}/hosts/h-1 had no answer within 0.3 s`);
    expect(err()).toContain('--timeout');
  });

  it('takes FLEETFOLD_TIMEOUT when there is no flag', async () => {
    const { io, err } = harness(() => ({}), {
      fetch: undefined,
      env: { FLEETFOLD_API: url, FLEETFOLD_TOKEN: 't', FLEETFOLD_TIMEOUT: '0.2' },
    });
    expect(await run(['groups'], io)).toBe(1);
    expect(err()).toContain('within 0.2 s');
  });

  it('leaves a prompt answer alone', async () => {
    const client = new ApiClient(
      { api: url, auth: { kind: 'bearer', token: 't' }, source: 'test' },
      (async () => new Response('{"ok":true}')) as typeof fetch,
      50,
    );
    expect((await client.json('GET', '/x')).body).toEqual({ ok: true });
  });
});

describe('-o yaml', () => {
  it('parses back to exactly the JSON document (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = JSON.parse(printDocument(value, 'json'));
        expect(JSON.parse(JSON.stringify(parseYaml(printDocument(value, 'yaml'))))).toEqual(json);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    [['host', 'demo-media-1'], () => host],
    [['hosts'], () => ({ hosts: [host] })],
    [
      ['history', 'demo-media-1'],
      () => ({
        hostId: 'demo-media-1',
        events: [{ version: 1, type: 'HostRegistered', data: { group: 'demo' } }],
      }),
    ],
    [
      ['diff', 'demo-media-1', '--with', 'b'],
      () => ({
        hostId: 'demo-media-1',
        with: 'b',
        changes: [{ op: 'changed', path: '/a', old: '1', new: 1 }],
      }),
    ],
    [['groups'], () => ({ groups: [{ name: 'demo', running: true }] })],
  ] as [string[], Handler][])('%j prints YAML equal to its JSON', async (argv, answer) => {
    const asJson = harness(answer);
    const asYaml = harness(answer);
    expect(await run([...argv, '-o', 'json'], asJson.io)).toBe(0);
    expect(await run([...argv, '-o', 'yaml'], asYaml.io)).toBe(0);
    expect(parseYaml(asYaml.out())).toEqual(JSON.parse(asJson.out()));
  });
});

describe('following and watching', () => {
  /** A history of two events at the first read that grows by one event per read after it. */
  function growingHistory() {
    let reads = 0;
    return (url: URL) => {
      reads += 1;
      const head = reads + 1;
      const from = Number(url.searchParams.get('from') ?? '1');
      const events = [];
      for (let version = from; version <= head; version += 1) {
        events.push({
          version,
          recordedAt: `t${version}`,
          type: 'StateObserved',
          data: { seq: version, changes: [] },
        });
      }
      return { events };
    };
  }

  it('prints the history, then each new event once, asking only for those, until --count of them', async () => {
    const { io, out, requests } = harness(growingHistory());
    expect(await run(['history', 'h-1', '--follow', '--count', '3', '--interval', '0.01'], io)).toBe(0);
    const lines = out().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VERSION\s+RECORDED\s+TYPE\s+SUMMARY$/);
    expect(lines.slice(1, 3).map((line) => line.trim().split(/\s+/)[0])).toEqual(['1', '2']);
    expect(lines.slice(3)).toEqual([
      '      3  t3  StateObserved  seq 3: no change (heartbeat)',
      '      4  t4  StateObserved  seq 4: no change (heartbeat)',
      '      5  t5  StateObserved  seq 5: no change (heartbeat)',
    ]);
    expect(requests.map((url) => url.pathname)).toEqual(Array(requests.length).fill('/hosts/h-1/history'));
    expect(requests.slice(1).map((url) => url.searchParams.get('from'))).toEqual(['3', '4', '5']);
  });

  it('follows a group the same way, as JSON lines, and stops when the signal aborts', async () => {
    const controller = new AbortController();
    let sleeps = 0;
    const { io, out, requests } = harness(growingHistory(), {
      signal: controller.signal,
      sleep: async () => {
        sleeps += 1;
        if (sleeps === 3) controller.abort();
      },
    });
    expect(await run(['events', 'demo', '--follow', '-o', 'json'], io)).toBe(0);
    const versions = out()
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as { version: number }).version);
    expect(versions).toEqual([1, 2, 3, 4]);
    expect(requests.every((url) => url.pathname === '/groups/demo/history')).toBe(true);
  });

  it('skips events already shown even when the API repeats them', async () => {
    const printed: number[] = [];
    const { io } = harness(() => ({ events: [{ version: 1 }, { version: 2 }, { version: 3 }] }));
    const client = new ApiClient(
      { api: 'http://127.0.0.1:9', auth: { kind: 'bearer', token: 't' }, source: 'test' },
      io.fetch,
    );
    const count = await followEvents(io, client, {
      path: '/x',
      after: 2,
      intervalMs: 1,
      count: 1,
      print: (event) => printed.push(event.version as number),
    });
    expect(count).toBe(1);
    expect(printed).toEqual([3]);
  });

  it('hosts --watch draws the table again only when it changed', async () => {
    const statuses = ['booting', 'booting', 'running', 'running', 'failed'];
    let reads = 0;
    const controller = new AbortController();
    const { io, out } = harness(
      () => ({ hosts: [{ ...host, status: statuses[Math.min(reads++, statuses.length - 1)] }] }),
      {
        signal: controller.signal,
        sleep: async () => {
          if (reads >= statuses.length) controller.abort();
        },
      },
    );
    expect(await run(['hosts', '--watch', '--interval', '0.5'], io)).toBe(0);
    const tables = out().split('\n\n');
    expect(tables.map((table) => table.match(/\b(booting|running|failed)\b/)?.[1])).toEqual([
      'booting',
      'running',
      'failed',
    ]);
    expect(`${tables[0]}\n`).toBe(renderHosts([{ ...host, status: 'booting' }]));
  });

  it('hosts --watch redraws in place on a terminal', async () => {
    let reads = 0;
    const controller = new AbortController();
    const { io, out } = harness(() => ({ hosts: [{ ...host, lastSeen: `t${reads++}` }] }), {
      signal: controller.signal,
      sleep: async () => {
        if (reads >= 2) controller.abort();
      },
    });
    io.stdout.isTTY = true;
    await run(['hosts', '--watch', '--no-color'], io);
    expect(out().split('\x1b[H\x1b[2J')).toHaveLength(2);
    expect(out()).toContain('(every 2 s, Ctrl-C stops)');
  });
});
