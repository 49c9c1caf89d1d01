/**
 * Scheduled capacity: "from 17:30 on 24 December, Paris time, keep at least 40 hosts for five hours". A window
 * starts at each minute a 5-field cron expression matches, in an IANA time zone, and lasts `durationMinutes`;
 * the scheduled minimum at a time is the largest `minCapacity` of the windows open then. Pure: the time is an
 * argument, the zone's rules come from Intl (the runtime's tz database), so daylight-saving shifts are honoured.
 */
import { ValidationError } from '../errors.ts';

/** The five fields, in order, with their ranges (day of week: 0 and 7 are both Sunday). */
const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day-of-week', min: 0, max: 7 },
] as const;

export interface CronExpression {
  source: string;
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  daysOfMonth: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 0 = Sunday … 6 = Saturday (a 7 in the source is stored as 0). */
  daysOfWeek: ReadonlySet<number>;
  /** Classic cron: when both day fields are restricted, a day matches if EITHER does. */
  dayOfMonthRestricted: boolean;
  dayOfWeekRestricted: boolean;
}

/** A cron expression that does not parse; names the field and its 1-based position among the five. */
export class CronError extends ValidationError {
  constructor(source: string, field: string, position: number, problem: string) {
    super(`cron ${JSON.stringify(source)}: ${field} field (position ${position}): ${problem}`, {
      cron: source,
      field,
      position,
    });
  }
}

const NUMBER = /^\d+$/;

function parseField(source: string, text: string, index: number): Set<number> {
  const { name, min, max } = FIELDS[index] as (typeof FIELDS)[number];
  const fail = (problem: string): never => {
    throw new CronError(source, name, index + 1, problem);
  };
  const number = (part: string): number => {
    if (!NUMBER.test(part)) fail(`expected a number ${min}-${max}, got ${JSON.stringify(part)}`);
    const value = Number(part);
    if (value < min || value > max) fail(`${value} is out of range ${min}-${max}`);
    return value;
  };
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') fail('empty list item');
    const [range, stepText, extra] = item.split('/');
    if (extra !== undefined) fail(`more than one "/" in ${JSON.stringify(item)}`);
    let step = 1;
    if (stepText !== undefined) {
      if (!NUMBER.test(stepText) || Number(stepText) === 0) {
        fail(`expected a positive step after "/", got ${JSON.stringify(stepText)}`);
      }
      step = Number(stepText);
    }
    let from: number;
    let to: number;
    if (range === '*') {
      from = min;
      to = max;
    } else if (range?.includes('-')) {
      const [low, high, more] = range.split('-');
      if (more !== undefined) fail(`malformed range ${JSON.stringify(range)}`);
      from = number(low ?? '');
      to = number(high ?? '');
      if (from > to) fail(`range ${from}-${to} runs backwards`);
    } else {
      from = number(range ?? '');
      // "5/15" means from 5 to the end in steps of 15, as in Vixie cron.
      to = stepText === undefined ? from : max;
    }
    for (let value = from; value <= to; value += step) values.add(value);
  }
  return values;
}

export function parseCron(source: string): CronExpression {
  const fields = source.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw new ValidationError(
      `cron ${JSON.stringify(source)}: expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`,
      { cron: source },
    );
  }
  const sets = fields.map((text, index) => parseField(source, text, index));
  const daysOfWeek = new Set([...(sets[4] as Set<number>)].map((day) => day % 7));
  return {
    source,
    minutes: sets[0] as Set<number>,
    hours: sets[1] as Set<number>,
    daysOfMonth: sets[2] as Set<number>,
    months: sets[3] as Set<number>,
    daysOfWeek,
    dayOfMonthRestricted: !(fields[2] as string).startsWith('*'),
    dayOfWeekRestricted: !(fields[4] as string).startsWith('*'),
  };
}

/** Wall-clock fields of a minute in a time zone. `weekday`: 0 = Sunday. */
export interface ZonedMinute {
  minute: number;
  hour: number;
  day: number;
  month: number;
  weekday: number;
}

export function cronMatches(cron: CronExpression, at: ZonedMinute): boolean {
  if (!cron.minutes.has(at.minute) || !cron.hours.has(at.hour) || !cron.months.has(at.month)) return false;
  const byMonthDay = cron.daysOfMonth.has(at.day);
  const byWeekday = cron.daysOfWeek.has(at.weekday);
  if (cron.dayOfMonthRestricted && cron.dayOfWeekRestricted) return byMonthDay || byWeekday;
  return byMonthDay && byWeekday;
}

export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };
const formatters = new Map<string, Intl.DateTimeFormat>();
/** Formatting is the slow part; a monitor asks about the same minutes tick after tick. Bounded, then reset. */
const zonedCache = new Map<string, ZonedMinute>();
const ZONED_CACHE_LIMIT = 200_000;

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      minute: 'numeric',
      hour: 'numeric',
      day: 'numeric',
      month: 'numeric',
      weekday: 'short',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** The wall-clock minute that contains epoch millisecond `at` in `timeZone`. */
export function zonedMinute(at: number, timeZone: string): ZonedMinute {
  const minuteStart = Math.floor(at / 60_000) * 60_000;
  const key = `${timeZone}@${minuteStart}`;
  const cached = zonedCache.get(key);
  if (cached !== undefined) return cached;
  const parts: Record<string, string> = {};
  for (const part of formatter(timeZone).formatToParts(minuteStart)) parts[part.type] = part.value;
  const zoned: ZonedMinute = {
    minute: Number(parts.minute),
    hour: Number(parts.hour),
    day: Number(parts.day),
    month: Number(parts.month),
    weekday: WEEKDAYS[parts.weekday ?? ''] ?? Number.NaN,
  };
  if (zonedCache.size >= ZONED_CACHE_LIMIT) zonedCache.clear();
  zonedCache.set(key, zoned);
  return zoned;
}

export interface ScheduleEntry {
  /** Shown in explanations, e.g. "christmas-eve". */
  name?: string;
  cron: string;
  /** IANA time zone the cron is read in, e.g. "Europe/Paris". */
  timeZone: string;
  minCapacity: number;
  durationMinutes: number;
}

export interface CompiledScheduleEntry extends ScheduleEntry {
  expression: CronExpression;
}

export function compileSchedule(entries: readonly ScheduleEntry[]): CompiledScheduleEntry[] {
  return entries.map((entry) => ({ ...entry, expression: parseCron(entry.cron) }));
}

/** The start (epoch ms, a whole minute) of the latest window of `entry` open at `at`, if one is. */
export function openWindowStart(entry: CompiledScheduleEntry, at: number): number | undefined {
  const minuteStart = Math.floor(at / 60_000) * 60_000;
  // A window that started at minute m is open during [m, m + duration): look back duration − 1 minutes.
  for (let back = 0; back < entry.durationMinutes; back++) {
    const start = minuteStart - back * 60_000;
    if (cronMatches(entry.expression, zonedMinute(start, entry.timeZone))) return start;
  }
  return undefined;
}

export interface ScheduledMinimum {
  /** 0 when no window is open. */
  minimum: number;
  /** The open windows, for the decision's explanation. */
  windows: Array<{
    name?: string;
    cron: string;
    timeZone: string;
    minCapacity: number;
    startedAt: string;
    endsAt: string;
  }>;
}

export function scheduledMinimum(entries: readonly CompiledScheduleEntry[], at: number): ScheduledMinimum {
  const windows: ScheduledMinimum['windows'] = [];
  let minimum = 0;
  for (const entry of entries) {
    const start = openWindowStart(entry, at);
    if (start === undefined) continue;
    minimum = Math.max(minimum, entry.minCapacity);
    windows.push({
      ...(entry.name === undefined ? {} : { name: entry.name }),
      cron: entry.cron,
      timeZone: entry.timeZone,
      minCapacity: entry.minCapacity,
      startedAt: new Date(start).toISOString(),
      endsAt: new Date(start + entry.durationMinutes * 60_000).toISOString(),
    });
  }
  return { minimum, windows };
}
