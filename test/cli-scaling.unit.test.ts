import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { decisionReason, renderScaling, type ScalingView } from '../cli/commands/scaling.ts';
import { run } from '../cli/main.ts';
import { captureIo } from './support/cli-capture.ts';

const scaleUp = {
  hostType: 'call-router',
  from: 2,
  to: 4,
  direction: 'up',
  recommendation: 5,
  recommendedBy: 'demand',
  boundBy: 'max',
  inputs: { window: { up: { seconds: 0 }, down: { seconds: 300 } } },
  at: '2031-02-03T04:05:15.000Z',
} as const;
const heldDown = {
  hostType: 'media',
  from: 3,
  to: 3,
  direction: 'hold',
  recommendation: 1,
  recommendedBy: 'demand',
  boundBy: 'stabilization',
  inputs: { window: { up: { seconds: 0 }, down: { seconds: 300 } } },
  at: '2031-02-03T04:05:00.000Z',
} as const;

/** The document W1's GET /groups/{name}/scaling answers, fixed. */
const DOCUMENT: ScalingView = {
  group: 'demo',
  hostTypes: {
    'call-router': {
      current: { ready: 2, booting: 2, draining: 0, total: 4 },
      desired: 4,
      min: 1,
      max: 4,
      channels: ['voice', 'sms'],
      demand: { voice: 420, sms: 12, mms: 0, video: 0 },
      load: 0.613,
      metrics: { mos: 4.2 },
      lastDecision: scaleUp,
    },
    media: {
      current: { ready: 3, booting: 0, draining: 1, total: 4 },
      desired: 3,
      min: 1,
      max: 6,
      channels: ['voice', 'video'],
      demand: { voice: 40, sms: 0, mms: 0, video: 3 },
      load: 0.2,
      metrics: {},
      scheduledMinimum: 2,
      forecast: { sessions: 367.7595704842804, at: '2031-02-03T04:10:00.000Z' },
      lastDecision: heldDown,
    },
  },
  decisions: [scaleUp, heldDown],
};

let server: Server;
let api: string;
const requests: IncomingMessage[] = [];
let answer: () => unknown = () => DOCUMENT;

beforeAll(async () => {
  server = createServer((request, response) => {
    requests.push(request);
    if (request.headers.authorization !== 'Bearer t') {
      response.writeHead(401, { 'content-type': 'application/problem+json' }).end('{"status":401}');
      return;
    }
    if (request.url !== '/groups/demo/scaling') {
      response
        .writeHead(404, { 'content-type': 'application/problem+json' })
        .end(JSON.stringify({ status: 404, title: 'Not found', detail: `no group at ${request.url}` }));
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function cli(options: { sleeps?: number } = {}) {
  return captureIo({ FLEETFOLD_API: api, FLEETFOLD_TOKEN: 't' }, tmpdir(), options);
}

describe('fleetfold scaling', () => {
  it('renders one row per host type with counts, range, demand on the channels it carries, load and why', () => {
    const lines = renderScaling(DOCUMENT).split('\n');
    expect(lines[0]).toMatch(
      /^HOST TYPE\s+CURRENT\s+DESIRED\s+MIN–MAX\s+VOICE\s+SMS\s+VIDEO\s+LOAD\s+SCHEDULED\s+FORECAST\s+METRICS\s+WHY$/,
    );
    // No host type carries mms: no column for it.
    expect(lines[0]).not.toContain('MMS');
    expect(lines[1]).toMatch(
      /^call-router\s+2\+2\/0\s+4\s+1–4\s+420\s+12\s+-\s+0\.61\s+-\s+-\s+mos=4\.2\s+up 2→4: sessions asked for 5, max is 4 \(at 2031-02-03T04:05:15\.000Z\)$/,
    );
    expect(lines[2]).toMatch(
      /^media\s+3\+0\/1\s+3\s+1–6\s+40\s+-\s+3\s+0\.20\s+2\s+368 at 2031-02-03T04:10:00\.000Z\s+-\s+hold 3→3: sessions asked for 1, the scale-down window \(300 s\) keeps 3/,
    );
    expect(lines).toContain('Last 2 decisions, newest first:');
    const decisions = lines.slice(lines.indexOf('Last 2 decisions, newest first:') + 1);
    expect(decisions[0]).toMatch(/^AT\s+HOST TYPE\s+CHANGE\s+WHY$/);
    expect(decisions[1]).toMatch(
      /^2031-02-03T04:05:15\.000Z\s+call-router\s+up 2→4\s+sessions asked for 5, max is 4$/,
    );
    expect(decisions[2]).toMatch(/^2031-02-03T04:05:00\.000Z\s+media\s+hold 3→3/);
  });

  it('says why in words for each bound', () => {
    const base = { from: 4, to: 6, direction: 'up', recommendation: 8, recommendedBy: 'load' } as const;
    expect(decisionReason({ ...base, boundBy: 'step-limit' })).toBe(
      'up 4→6: load asked for 8, the step limit allows 6',
    );
    expect(decisionReason({ ...base, boundBy: 'load' })).toBe('up 4→6: load asked for 8');
    expect(
      decisionReason({
        ...base,
        recommendedBy: 'metric',
        boundBy: 'cooldown',
        inputs: {
          metrics: [{ name: 'p99LatencyMs', verdict: 'provision', value: 420 }],
          cooldown: { seconds: 60, until: '2031-02-03T04:06:00Z' },
        },
      }),
    ).toBe('up 4→6: p99LatencyMs 420 asked for 8, cooling down until 2031-02-03T04:06:00Z: 6');
    expect(
      decisionReason({ ...base, to: 8, recommendation: 3, recommendedBy: 'no-signal', boundBy: 'schedule' }),
    ).toBe('up 4→8: no sessions, load or metric reported, the scheduled minimum is 8');
    const held = { ...heldDown, inputs: { window: { down: { seconds: 600, returns: 1 } } } };
    expect(decisionReason(held)).toMatch(/window \(600 s, doubled for a dip that came back\) keeps 3 \(at /);
    held.inputs.window.down = { seconds: 600, returns: 1, warmingUp: true } as typeof held.inputs.window.down;
    expect(decisionReason(held)).toMatch(/\(600 s, doubled until the host type has an hour of history\)/);
  });

  it('says when there is nothing to show', () => {
    expect(renderScaling({ group: 'empty', hostTypes: {}, decisions: [] })).toBe(
      'group empty has no host types to scale\n',
    );
    const { lastDecision: _, ...quiet } = DOCUMENT.hostTypes?.media ?? {};
    const text = renderScaling({ group: 'demo', hostTypes: { media: quiet }, decisions: [] });
    expect(text).toContain('no decision yet');
    expect(text).toContain('no scaling decisions yet');
  });

  it('reads GET /groups/{name}/scaling over HTTP and prints the table, JSON or YAML of the same document', async () => {
    const table = cli();
    expect(await run(['scaling', 'demo'], table.io)).toBe(0);
    expect(table.out()).toBe(renderScaling(DOCUMENT));

    const json = cli();
    expect(await run(['scaling', 'demo', '-o', 'json'], json.io)).toBe(0);
    expect(JSON.parse(json.out())).toEqual(DOCUMENT);

    const yaml = cli();
    expect(await run(['scaling', 'demo', '--output', 'yaml'], yaml.io)).toBe(0);
    expect(parseYaml(yaml.out())).toEqual(DOCUMENT);
  });

  it('an unknown group is the API refusing: exit 1 with its problem', async () => {
    const missing = cli();
    expect(await run(['scaling', 'nope'], missing.io)).toBe(1);
    expect(missing.err()).toContain('no group at /groups/nope/scaling');
  });

  it('refuses wrong flags, naming them', async () => {
    const cases: [string[], RegExp][] = [
      [['scaling'], /expected GROUP, got none/],
      [['scaling', 'demo', 'extra'], /expected GROUP/],
      [['scaling', 'demo', '-o', 'xml'], /--output must be table, json or yaml/],
      [['scaling', 'demo', '-o', 'json', '--watch'], /--watch .* without --output/],
      [['scaling', 'demo', '--interval', '2'], /--interval .* give --watch too/],
      [['scaling', 'demo', '--watch', '--interval', 'soon'], /--interval must be a positive number/],
      [['scaling', 'demo', '--replicas', '3'], /--replicas/],
    ];
    for (const [args, message] of cases) {
      const bad = cli();
      expect(await run(args, bad.io), args.join(' ')).toBe(2);
      expect(bad.err()).toMatch(message);
      expect(bad.err()).toContain('fleetfold scaling --help');
    }
  });

  it('--watch draws the table again only when the document changed', async () => {
    const counts = [4, 4, 5];
    let read = 0;
    answer = () => {
      const desired = counts[Math.min(read, counts.length - 1)] as number;
      read += 1;
      const type = DOCUMENT.hostTypes?.['call-router'];
      return { ...DOCUMENT, hostTypes: { ...DOCUMENT.hostTypes, 'call-router': { ...type, desired } } };
    };
    try {
      const watch = cli({ sleeps: 3 });
      await expect(run(['scaling', 'demo', '--watch', '--interval', '0.01'], watch.io)).rejects.toThrow(
        'interrupted',
      );
      // First draw, an unchanged read (nothing printed), then the change: two tables in all.
      expect(read).toBe(4);
      const tables = watch
        .out()
        .split('\n\n')
        .filter((part) => part.startsWith('HOST TYPE'));
      expect(tables).toHaveLength(2);
      expect(tables[1]).toMatch(/^call-router\s+2\+2\/0\s+5\s/m);
    } finally {
      answer = () => DOCUMENT;
    }
  });

  it('is in the command list and the shell completion', async () => {
    const help = cli();
    expect(await run(['--help'], help.io)).toBe(0);
    expect(help.out()).toMatch(/\n {2}scaling\s+a group's current and desired host counts/);
    const completion = cli();
    expect(await run(['completion', 'bash'], completion.io)).toBe(0);
    expect(completion.out()).toMatch(/scaling\)[\s\S]*--watch[\s\S]*--interval/);
    expect(completion.out()).toMatch(
      /simulate\)[\s\S]*--channel[\s\S]*--sessions[\s\S]*--load[\s\S]*--clear/,
    );
  });
});
