import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLocalApi } from '../cli/commands/simulate.ts';
import { run } from '../cli/main.ts';
import { hostTypeDemandFile } from '../shared/simulated-demand.ts';
import { captureIo } from './support/cli-capture.ts';

let server: Server;
let api: string;
let stateDir: string;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-simulate-'));
  // GET /groups/demo as the API answers it, cut to what simulate reads.
  server = createServer((request, response) => {
    if (request.url === '/groups/demo') {
      const definition = { name: 'demo', hostTypes: { 'call-router': { count: 2 }, media: { count: 1 } } };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ definition }));
      return;
    }
    response
      .writeHead(404, { 'content-type': 'application/problem+json' })
      .end(JSON.stringify({ status: 404, title: 'Not found', detail: `no group at ${request.url}` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(stateDir, { recursive: true, force: true });
});

function cli(env: Record<string, string> = {}) {
  return captureIo(
    { FLEETFOLD_API: api, FLEETFOLD_TOKEN: 't', FLEETFOLD_STATE_DIR: stateDir, ...env },
    tmpdir(),
  );
}

async function simulate(args: string[], env: Record<string, string> = {}) {
  const io = cli(env);
  const code = await run(['simulate', ...args], io.io);
  return { code, out: io.out(), err: io.err() };
}

const demandFile = () => hostTypeDemandFile(stateDir, 'demo', 'call-router');
const demandOnDisk = async () => JSON.parse(await readFile(demandFile(), 'utf8'));

describe('fleetfold simulate', () => {
  it('refuses flags that do not make a demand, naming them', async () => {
    const cases: [string[], RegExp][] = [
      [['demo', 'call-router', '--sessions', '10'], /--channel is needed/],
      [
        ['demo', 'call-router', '--channel', 'fax', '--sessions', '1'],
        /--channel must be one of voice, sms, mms, video, got "fax"/,
      ],
      [['demo', 'call-router', '--channel', 'voice'], /--sessions N is needed/],
      [['demo', 'call-router', '--channel', 'voice', '--sessions', '-3'], /--sessions/],
      [
        ['demo', 'call-router', '--channel', 'voice', '--sessions', '2.5'],
        /--sessions must be a whole number/,
      ],
      [
        ['demo', 'call-router', '--channel', 'voice', '--sessions', '5', '--load', '1.5'],
        /--load must be a fraction from 0 to 1/,
      ],
      [['demo', 'call-router', '--clear', '--sessions', '5'], /--clear and --sessions/],
      [['demo', 'call-router', '--clear', '--load', '0.5'], /--load .* --clear/],
      [['demo', '--channel', 'voice', '--sessions', '5'], /expected GROUP HOSTTYPE/],
      [['demo', 'call-router', '--channel', 'voice', '--sessions', '5', '--rate', '3'], /--rate/],
    ];
    for (const [args, message] of cases) {
      const outcome = await simulate(args);
      expect(outcome.code, args.join(' ')).toBe(2);
      expect(outcome.err).toMatch(message);
      expect(outcome.err).toContain('fleetfold simulate --help');
    }
    expect(existsSync(demandFile())).toBe(false);
  });

  it('works in local mode only: an API elsewhere, or no local state folder, is refused', async () => {
    const remote = await simulate(['demo', 'call-router', '--channel', 'voice', '--sessions', '5'], {
      FLEETFOLD_API: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod',
    });
    expect(remote.code).toBe(2);
    expect(remote.err).toMatch(
      /local mode only: the API https:\/\/abc123\.execute-api.* is not on this machine/,
    );

    const noState = await simulate(['demo', 'call-router', '--channel', 'voice', '--sessions', '5'], {
      FLEETFOLD_STATE_DIR: join(stateDir, 'not-there'),
    });
    expect(noState.code).toBe(2);
    expect(noState.err).toMatch(/local mode only: there is no local state folder .*not-there/);
    expect(existsSync(demandFile())).toBe(false);

    expect(isLocalApi('http://127.0.0.1:4000')).toBe(true);
    expect(isLocalApi('http://localhost:4000')).toBe(true);
    expect(isLocalApi('http://[::1]:4000')).toBe(true);
    expect(isLocalApi('http://10.0.0.5:4000')).toBe(false);
  });

  it('refuses a host type the group does not define, and a group the API does not know', async () => {
    const typo = await simulate(['demo', 'call-ruoter', '--channel', 'voice', '--sessions', '5']);
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('group demo has no host type "call-ruoter" (it has call-router, media)');
    const unknown = await simulate(['nope', 'media', '--channel', 'voice', '--sessions', '5']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no group at /groups/nope');
  });

  it('merges calls for different channels into one file; --sessions 0 idles a channel; --clear removes it', async () => {
    const voice = await simulate(['demo', 'call-router', '--channel', 'voice', '--sessions', '300']);
    expect(voice).toMatchObject({ code: 0, err: '' });
    expect(voice.out).toContain('demo/call-router: simulating voice 300 sessions');
    expect(await demandOnDisk()).toEqual({ sessions: { voice: 300 } });

    await simulate(['demo', 'call-router', '--channel', 'sms', '--sessions', '20', '--load', '0.7']);
    expect(await demandOnDisk()).toEqual({ sessions: { voice: 300, sms: 20 }, load: 0.7 });

    // A later call for a channel replaces that channel's count and keeps the load.
    await simulate(['demo', 'call-router', '--channel', 'voice', '--sessions', '0']);
    expect(await demandOnDisk()).toEqual({ sessions: { voice: 0, sms: 20 }, load: 0.7 });

    const cleared = await simulate(['demo', 'call-router', '--clear', '--channel', 'voice']);
    expect(cleared.code).toBe(0);
    expect(await demandOnDisk()).toEqual({ sessions: { sms: 20 }, load: 0.7 });

    // The other host type's demand is its own file.
    await simulate(['demo', 'media', '--channel', 'video', '--sessions', '4']);
    const all = await simulate(['demo', 'call-router', '--clear']);
    expect(all.out).toContain('demo/call-router: no simulated demand');
    expect(existsSync(demandFile())).toBe(false);
    expect(existsSync(hostTypeDemandFile(stateDir, 'demo', 'media'))).toBe(true);
  });
});
