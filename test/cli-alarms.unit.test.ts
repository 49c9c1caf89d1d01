import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { type AlarmRow, renderAlarmLine, renderAlarms } from '../cli/commands/alarms.ts';
import type { CliIo } from '../cli/io.ts';
import { run } from '../cli/main.ts';

const crash: AlarmRow = {
  group: 'demo',
  alarmId: 'replacements#media#demo-media-3',
  alarm: 'repeated-host-failures',
  detail: '3 media hosts died\nwithin 10 minutes',
  at: '2031-02-03T04:05:06.000Z',
  hostIds: ['demo-media-1', 'demo-media-2', 'demo-media-3'],
};
const failed: AlarmRow = {
  group: 'other',
  alarmId: 'plan-1.alarm',
  alarm: 'reconcile-failed',
  detail: 'wave 2 did not converge',
  at: '2031-02-03T05:00:00.000Z',
  clearedAt: '2031-02-03T05:10:00.000Z',
  diagnosis: { hosts: [{ hostId: 'o-1' }] },
};

/** The API as a test double: successive GET /alarms answers, one per request, the last one repeated. */
function serving(pages: AlarmRow[][]) {
  const requests: URL[] = [];
  let output = '';
  let errors = '';
  let sleeps = 0;
  const io: CliIo = {
    stdout: {
      write: (text) => {
        output += text;
      },
    },
    stderr: {
      write: (text) => {
        errors += text;
      },
    },
    env: { FLEETFOLD_API: 'http://127.0.0.1:9', FLEETFOLD_TOKEN: 't' },
    cwd: tmpdir(),
    fetch: (async (input: string | URL | Request) => {
      const url = new URL(String(input));
      requests.push(url);
      const alarms = pages[Math.min(requests.length - 1, pages.length - 1)] ?? [];
      return new Response(JSON.stringify({ alarms }), { status: 200 });
    }) as typeof fetch,
    sleep: async () => {
      sleeps += 1;
      // Ends the watch: it polls until interrupted.
      if (sleeps > 3) throw new Error('interrupted');
    },
  };
  return { io, requests, out: () => output, err: () => errors, sleeps: () => sleeps };
}

describe('fleetfold alarms', () => {
  it('renders alarms as a table, newest first as the API lists them, line breaks kept out', () => {
    expect(renderAlarms([failed, crash]).split('\n')).toEqual([
      'RAISED                    GROUP  ALARM                   HOSTS                                   CLEARED                   DETAIL',
      '2031-02-03T05:00:00.000Z  other  reconcile-failed        o-1                                     2031-02-03T05:10:00.000Z  wave 2 did not converge',
      '2031-02-03T04:05:06.000Z  demo   repeated-host-failures  demo-media-1,demo-media-2,demo-media-3  -                         3 media hosts died within 10 minutes',
      '',
    ]);
    expect(renderAlarms([])).toBe('no alarms\n');
  });

  it('asks GET /alarms with the group and since given', async () => {
    const api = serving([[failed, crash]]);
    expect(await run(['alarms', '--group', 'demo', '--since', '2031-02-03T00:00:00Z'], api.io)).toBe(0);
    expect(api.requests).toHaveLength(1);
    const url = api.requests[0] as URL;
    expect(url.pathname).toBe('/alarms');
    expect(url.searchParams.get('group')).toBe('demo');
    expect(url.searchParams.get('since')).toBe('2031-02-03T00:00:00Z');
    expect(api.out()).toContain('reconcile-failed');
  });

  it('with --watch polls every 5 s and prints only the alarms not seen before, one line each', async () => {
    const newer: AlarmRow = { ...crash, alarmId: 'later', at: '2031-02-03T06:00:00.000Z', hostIds: [] };
    const api = serving([[crash], [crash], [newer, crash], [newer, crash]]);
    await expect(run(['alarms', '--watch'], api.io)).rejects.toThrow('interrupted');
    const lines = api.out().split('\n');
    expect(lines[0]).toMatch(/^RAISED/);
    expect(lines.filter((line) => line.includes('later') || line.startsWith('2031-02-03T06'))).toEqual([
      '2031-02-03T06:00:00.000Z  demo  repeated-host-failures  3 media hosts died within 10 minutes',
    ]);
    // Each poll asks only for what was raised since the newest alarm it had seen.
    expect(api.requests.slice(1).map((url) => url.searchParams.get('since'))).toEqual([
      '2031-02-03T04:05:06.000Z',
      '2031-02-03T04:05:06.000Z',
      '2031-02-03T06:00:00.000Z',
    ]);
  });

  it('prints one watched alarm on one line, with its hosts', () => {
    expect(renderAlarmLine(crash)).toBe(
      '2031-02-03T04:05:06.000Z  demo  repeated-host-failures  3 media hosts died within 10 minutes (hosts demo-media-1,demo-media-2,demo-media-3)\n',
    );
  });

  it('rejects --watch with another output than the table, with exit code 2', async () => {
    const api = serving([]);
    expect(await run(['alarms', '--watch', '-o', 'json'], api.io)).toBe(2);
    expect(api.err()).toContain('--watch prints one line per new alarm');
    expect(api.requests).toHaveLength(0);
  });
});
