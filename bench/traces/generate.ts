/**
 * Writes the autoscaler's load traces (bench/traces/<name>.json) from their recipes, so a trace can be read,
 * changed and regenerated: `tsx bench/traces/generate.ts`. Noise comes from a seeded generator, so the files
 * are the same on every run. The traces start on Monday 2026-12-21 00:00 UTC (bench/autoscale.ts SIM_START).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../../agent/facts/simulated.ts';
import type { Trace } from '../autoscale.ts';

/** Piecewise-linear demand: [minute, sessions] knots, sampled every `stepSeconds`. */
function piecewise(knots: ReadonlyArray<readonly [number, number]>, stepSeconds: number): number[] {
  const end = (knots[knots.length - 1] as readonly [number, number])[0] * 60;
  const demand: number[] = [];
  for (let t = 0; t < end; t += stepSeconds) {
    const minute = t / 60;
    let i = 0;
    while (i < knots.length - 2 && (knots[i + 1] as readonly [number, number])[0] <= minute) i++;
    const [m0, v0] = knots[i] as readonly [number, number];
    const [m1, v1] = knots[i + 1] as readonly [number, number];
    demand.push(Math.round(v0 + ((v1 - v0) * (minute - m0)) / (m1 - m0)));
  }
  return demand;
}

const common = { targetPerHost: 50, capacityPerHost: 60 };

const ramp: Trace = {
  name: 'ramp',
  stepSeconds: 60,
  ...common,
  bootSeconds: 180,
  min: 2,
  max: 80,
  // Quiet, an hour's climb to 20x, a plateau, an hour's descent.
  demand: piecewise(
    [
      [0, 150],
      [30, 150],
      [90, 3000],
      [120, 3000],
      [180, 150],
      [210, 150],
    ],
    60,
  ),
};

const spike: Trace = {
  name: 'spike',
  stepSeconds: 15,
  ...common,
  bootSeconds: 120,
  min: 2,
  max: 100,
  // A broadcast mentions the number: 12x in three minutes, twenty minutes of it, ten to fade.
  demand: piecewise(
    [
      [0, 200],
      [30, 200],
      [33, 2400],
      [53, 2400],
      [63, 200],
      [93, 200],
    ],
    15,
  ),
};

const oscillation: Trace = {
  name: 'oscillation',
  stepSeconds: 60,
  ...common,
  bootSeconds: 180,
  min: 1,
  max: 10,
  // ±20% around 110 sessions, the threshold where 2 hosts (target 50, tolerance 0.1) stop being enough and a
  // third is added; a 20-minute period, longer than the 5-minute scale-down window, for four hours.
  demand: Array.from({ length: 240 }, (_, minute) =>
    Math.round(110 * (1 + 0.2 * Math.sin((2 * Math.PI * minute) / 20))),
  ),
};

/** Daily shape of a call centre: nights low, an opening rush at 08:00, a lunch dip, an evening decline. */
const WEEKDAY = piecewise(
  [
    [0, 300],
    [7 * 60 + 45, 300],
    [8 * 60 + 15, 4000],
    [12 * 60, 4000],
    [13 * 60, 2800],
    [14 * 60, 3800],
    [18 * 60, 3000],
    [21 * 60, 800],
    [24 * 60, 300],
  ],
  60,
);

function weekly(): Trace {
  const noise = mulberry32(9);
  const demand: number[] = [];
  for (let minute = 0; minute < 4 * 7 * 1440; minute++) {
    const day = Math.floor(minute / 1440);
    const weekday = day % 7; // the trace starts on a Monday
    const weekend = weekday >= 5;
    const growth = 1 + 0.03 * (minute / (7 * 1440)); // 3% a week
    const base = (WEEKDAY[minute % 1440] as number) * (weekend ? 0.35 : 1);
    demand.push(Math.round(base * growth * (1 + 0.03 * (noise() * 2 - 1))));
  }
  return { name: 'weekly', stepSeconds: 60, ...common, bootSeconds: 240, min: 4, max: 150, demand };
}

function holiday(): Trace {
  const noise = mulberry32(24);
  const demand: number[] = [];
  // Four days from Monday 21 December (UTC); Paris is UTC+1 in winter.
  for (let minute = 0; minute < 4 * 1440; minute++) {
    const utcMinuteOfDay = minute % 1440;
    const evening = Math.max(0, 1 - Math.abs(utcMinuteOfDay - 19 * 60) / 180); // a gentle evening bump
    let sessions = 300 + 500 * evening;
    // Christmas Eve, 18:00 Paris (17:00 UTC): everybody calls at once; three hours of it.
    const eve = minute - (3 * 1440 + 17 * 60);
    if (eve >= 0 && eve < 180) sessions = 2800 * Math.min(1, (eve + 1) / 5);
    demand.push(Math.round(sessions * (1 + 0.03 * (noise() * 2 - 1))));
  }
  return {
    name: 'holiday',
    stepSeconds: 60,
    ...common,
    bootSeconds: 180,
    min: 4,
    max: 80,
    demand,
    // Announced by the operator: the target's worth of hosts for 2 800 sessions (56), from 20 minutes before
    // the peak (boot time and a margin) to its end at 21:00.
    schedule: [
      {
        name: 'christmas-eve',
        cron: '40 17 24 12 *',
        timeZone: 'Europe/Paris',
        minCapacity: 56,
        durationMinutes: 200,
      },
    ],
  };
}

const here = new URL('.', import.meta.url).pathname;
for (const trace of [ramp, spike, oscillation, holiday(), weekly()]) {
  writeFileSync(join(here, `${trace.name}.json`), `${JSON.stringify(trace)}\n`);
}
