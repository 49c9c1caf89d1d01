import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CronError,
  compileSchedule,
  cronMatches,
  parseCron,
  scheduledMinimum,
  type ZonedMinute,
  zonedMinute,
} from '../shared/scaling/schedule.ts';

/** One list item of a field, kept as structure so a brute-force matcher can judge it without the parser. */
type Item =
  | { kind: 'star'; step: number }
  | { kind: 'value'; value: number }
  | { kind: 'range'; from: number; to: number; step: number };

const RANGES = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
] as const;

function item(min: number, max: number): fc.Arbitrary<Item> {
  return fc.oneof(
    fc.record({ kind: fc.constant('star' as const), step: fc.integer({ min: 1, max: 10 }) }),
    fc.record({ kind: fc.constant('value' as const), value: fc.integer({ min, max }) }),
    fc
      .tuple(fc.integer({ min, max }), fc.integer({ min, max }), fc.integer({ min: 1, max: 10 }))
      .map(([a, b, step]) => ({ kind: 'range' as const, from: Math.min(a, b), to: Math.max(a, b), step })),
  );
}

const cronFields = fc.tuple(
  ...RANGES.map(([min, max]) => fc.array(item(min, max), { minLength: 1, maxLength: 3 })),
);

function format(items: readonly Item[]): string {
  return items
    .map((i) => {
      if (i.kind === 'star') return i.step === 1 ? '*' : `*/${i.step}`;
      if (i.kind === 'value') return String(i.value);
      return `${i.from}-${i.to}${i.step === 1 ? '' : `/${i.step}`}`;
    })
    .join(',');
}

/** Does `value` belong to the field, straight from the definition of each item (min is the field's start). */
function bruteHas(items: readonly Item[], value: number, min: number): boolean {
  return items.some((i) => {
    if (i.kind === 'star') return (value - min) % i.step === 0;
    if (i.kind === 'value') return value === i.value;
    return value >= i.from && value <= i.to && (value - i.from) % i.step === 0;
  });
}

function bruteMatches(fields: readonly (readonly Item[])[], at: ZonedMinute): boolean {
  const [minute, hour, dom, month, dow] = fields as [Item[], Item[], Item[], Item[], Item[]];
  const weekdays = (day: number) => bruteHas(dow, day, 0) || (day === 0 && bruteHas(dow, 7, 0));
  const dayOfMonthStar = dom[0]?.kind === 'star';
  const dayOfWeekStar = dow[0]?.kind === 'star';
  if (!bruteHas(minute, at.minute, 0) || !bruteHas(hour, at.hour, 0) || !bruteHas(month, at.month, 1))
    return false;
  if (!dayOfMonthStar && !dayOfWeekStar) return bruteHas(dom, at.day, 1) || weekdays(at.weekday);
  return bruteHas(dom, at.day, 1) && weekdays(at.weekday);
}

const zoned = fc.record({
  minute: fc.integer({ min: 0, max: 59 }),
  hour: fc.integer({ min: 0, max: 23 }),
  day: fc.integer({ min: 1, max: 31 }),
  month: fc.integer({ min: 1, max: 12 }),
  weekday: fc.integer({ min: 0, max: 6 }),
});

describe('cron', () => {
  it('parses what it is given to the same sets a brute-force matcher derives, minute by minute', () => {
    fc.assert(
      fc.property(cronFields, fc.array(zoned, { minLength: 20, maxLength: 20 }), (fields, minutes) => {
        const cron = parseCron(fields.map(format).join(' '));
        for (const at of minutes) expect(cronMatches(cron, at)).toBe(bruteMatches(fields, at));
        // Round trip: each field's set, written back as a plain list, parses to the same set.
        const lists = [cron.minutes, cron.hours, cron.daysOfMonth, cron.months, cron.daysOfWeek].map((set) =>
          [...set].sort((a, b) => a - b).join(','),
        );
        const again = parseCron(lists.join(' '));
        expect(again.minutes).toEqual(cron.minutes);
        expect(again.hours).toEqual(cron.hours);
        expect(again.daysOfMonth).toEqual(cron.daysOfMonth);
        expect(again.months).toEqual(cron.months);
        expect(again.daysOfWeek).toEqual(cron.daysOfWeek);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects a bad field naming it and its position', () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['60 * * * *', 'minute', 1, /60 is out of range 0-59/],
      ['* 24 * * *', 'hour', 2, /24 is out of range 0-23/],
      ['* * 0 * *', 'day-of-month', 3, /0 is out of range 1-31/],
      ['* * * 1-13 *', 'month', 4, /13 is out of range 1-12/],
      ['* * * * 8', 'day-of-week', 5, /8 is out of range 0-7/],
      ['*/0 * * * *', 'minute', 1, /positive step/],
      ['* 5-2 * * *', 'hour', 2, /runs backwards/],
      ['* * 1,,2 * *', 'day-of-month', 3, /empty list item/],
      ['* * * JAN *', 'month', 4, /expected a number 1-12, got "JAN"/],
    ];
    for (const [source, field, position, problem] of cases) {
      let caught: unknown;
      try {
        parseCron(source);
      } catch (error) {
        caught = error;
      }
      expect(caught, source).toBeInstanceOf(CronError);
      const error = caught as CronError;
      expect(error.message).toContain(`${field} field (position ${position})`);
      expect(error.message).toMatch(problem);
      expect(error.details).toMatchObject({ field, position });
    }
    expect(() => parseCron('* * * *')).toThrow(/expected 5 fields/);
  });

  it('reads wall-clock minutes in the zone, across a daylight-saving change', () => {
    // Paris: UTC+1 in winter, UTC+2 from 29 March 2026 01:00 UTC.
    expect(zonedMinute(Date.UTC(2026, 2, 28, 8, 0), 'Europe/Paris')).toMatchObject({ hour: 9, weekday: 6 });
    expect(zonedMinute(Date.UTC(2026, 2, 30, 7, 0), 'Europe/Paris')).toMatchObject({ hour: 9, weekday: 1 });
    expect(zonedMinute(Date.UTC(2026, 11, 24, 16, 30), 'Europe/Paris')).toEqual({
      minute: 30,
      hour: 17,
      day: 24,
      month: 12,
      weekday: 4,
    });
  });
});

describe('scheduled minimum', () => {
  const MINUTE = 60_000;

  it("is the entry's minimum exactly from a cron match for durationMinutes, and 0 elsewhere", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 59 }),
        fc.integer({ min: 0, max: 23 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: -400, max: 400 }),
        (minute, hour, duration, minCapacity, offset) => {
          const [entry] = compileSchedule([
            {
              cron: `${minute} ${hour} * * *`,
              timeZone: 'Asia/Kolkata',
              minCapacity,
              durationMinutes: duration,
            },
          ]);
          // 2026-06-10 in Kolkata (UTC+5:30): the match that day, then `offset` minutes from it.
          const start = Date.UTC(2026, 5, 10, hour, minute) - 330 * MINUTE;
          const at = start + offset * MINUTE + 30_000;
          // Brute force: open if some match m (every day at hour:minute) has m <= at < m + duration.
          const dayMs = 1440 * MINUTE;
          const open = [-1, 0, 1].some((day) => {
            const match = start + day * dayMs;
            return at >= match && at < match + duration * MINUTE;
          });
          expect(scheduledMinimum([entry as never], at).minimum).toBe(open ? minCapacity : 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('takes the largest of the open windows and explains them', () => {
    const entries = compileSchedule([
      { name: 'eve', cron: '40 17 24 12 *', timeZone: 'Europe/Paris', minCapacity: 56, durationMinutes: 200 },
      {
        name: 'evenings',
        cron: '0 17 * * *',
        timeZone: 'Europe/Paris',
        minCapacity: 10,
        durationMinutes: 360,
      },
    ]);
    const during = scheduledMinimum(entries, Date.UTC(2026, 11, 24, 17, 0));
    expect(during.minimum).toBe(56);
    expect(during.windows.map((window) => [window.name, window.startedAt, window.endsAt])).toEqual([
      ['eve', '2026-12-24T16:40:00.000Z', '2026-12-24T20:00:00.000Z'],
      ['evenings', '2026-12-24T16:00:00.000Z', '2026-12-24T22:00:00.000Z'],
    ]);
    expect(scheduledMinimum(entries, Date.UTC(2026, 11, 24, 20, 0)).minimum).toBe(10);
    expect(scheduledMinimum(entries, Date.UTC(2026, 11, 24, 15, 59)).minimum).toBe(0);
  });
});
