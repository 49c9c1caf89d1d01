/**
 * A forecast of one channel's demand from the group's own history: what it was at the same time in the last
 * weeks, scaled by how this week compares (the ratio of the last hour to the same hour in those weeks), and
 * the short-term trend of the last minutes. It looks `leadSeconds` ahead and answers the largest demand in
 * (now, now + lead], so a host ordered now is serving when the peak arrives: the lead should be at least the
 * boot time. Pure: the history and `now` are arguments.
 */

const WEEK_MS = 7 * 86_400_000;
const HOUR_MS = 3_600_000;

export interface DemandSample {
  /** Epoch milliseconds. */
  at: number;
  /** Live sessions of the channel over the host type. */
  sessions: number;
}

export interface PredictorOptions {
  leadSeconds: number;
  /** Weeks of history averaged for the seasonal part (EC2 predictive scaling looks at 14 days). */
  lookbackWeeks: number;
  /** Window of the short-term trend; 0 turns it off. */
  trendSeconds: number;
}

export interface Forecast {
  /** The largest demand expected in (now, now + lead]. */
  sessions: number;
  /** How it was made, for the decision's explanation. */
  seasonal?: { sessions: number; weeks: number; trendRatio: number };
  trend?: { sessions: number; slopePerSecond: number };
}

/**
 * The ratio of this week's last hour to the same hour of earlier weeks moves the seasonal shape up or down;
 * bounded so one odd hour (an outage, a test) cannot make the forecast explode or vanish.
 */
const TREND_RATIO_BOUNDS = [0.5, 2] as const;

/** Index of the last sample at or before `at` (samples sorted by time), or −1. */
function lastAtOrBefore(samples: readonly DemandSample[], at: number): number {
  let low = 0;
  let high = samples.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if ((samples[mid] as DemandSample).at <= at) {
      found = mid;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found;
}

/** Mean demand over (from, to], or undefined without samples there. */
function meanBetween(samples: readonly DemandSample[], from: number, to: number): number | undefined {
  let sum = 0;
  let n = 0;
  for (let i = lastAtOrBefore(samples, to); i >= 0; i--) {
    const sample = samples[i] as DemandSample;
    if (sample.at <= from) break;
    sum += sample.sessions;
    n++;
  }
  return n === 0 ? undefined : sum / n;
}

/** The largest demand in (from, to], or the value in force at `to` when no sample falls inside. */
function peakBetween(samples: readonly DemandSample[], from: number, to: number): number | undefined {
  let peak: number | undefined;
  let i = lastAtOrBefore(samples, to);
  for (; i >= 0; i--) {
    const sample = samples[i] as DemandSample;
    if (sample.at <= from) break;
    peak = Math.max(peak ?? sample.sessions, sample.sessions);
  }
  // The sample in force at the start of the interval still holds during it.
  if (i >= 0) {
    const held = (samples[i] as DemandSample).sessions;
    peak = Math.max(peak ?? held, held);
  }
  return peak;
}

function seasonal(
  samples: readonly DemandSample[],
  now: number,
  options: PredictorOptions,
): Forecast['seasonal'] | undefined {
  const lead = options.leadSeconds * 1000;
  let peaks = 0;
  let recent = 0;
  let weeks = 0;
  for (let week = 1; week <= options.lookbackWeeks; week++) {
    const shift = week * WEEK_MS;
    const peak = peakBetween(samples, now - shift, now - shift + lead);
    const hour = meanBetween(samples, now - shift - HOUR_MS, now - shift);
    if (peak === undefined || hour === undefined) continue;
    peaks += peak;
    recent += hour;
    weeks++;
  }
  if (weeks === 0 || (samples[0] as DemandSample).at > now - WEEK_MS) return undefined;
  const thisHour = meanBetween(samples, now - HOUR_MS, now);
  const [low, high] = TREND_RATIO_BOUNDS;
  const ratio =
    thisHour === undefined || recent === 0 ? 1 : Math.min(high, Math.max(low, thisHour / (recent / weeks)));
  return { sessions: (peaks / weeks) * ratio, weeks, trendRatio: ratio };
}

/** Least-squares slope (sessions per second) of the samples, newest first; undefined with fewer than 3. */
function slope(window: readonly DemandSample[]): number | undefined {
  if (window.length < 3) return undefined;
  const meanT = window.reduce((sum, s) => sum + s.at, 0) / window.length;
  const meanY = window.reduce((sum, s) => sum + s.sessions, 0) / window.length;
  let covariance = 0;
  let variance = 0;
  for (const sample of window) {
    covariance += (sample.at - meanT) * (sample.sessions - meanY);
    variance += (sample.at - meanT) ** 2;
  }
  return variance === 0 ? undefined : (covariance / variance) * 1000;
}

/**
 * The part of the trend window that must still be rising: its last sixth (100 s of the default 600 s, seven
 * 15-s samples). Chosen on the bench traces as one default for all of them: a third kept a levelled-off spike's
 * overshoot for 200 s (spike trace 1.050x the baseline's host-hours), a sixth 1.035x; ramp and weekly barely move.
 */
const TREND_RECENT_FRACTION = 1 / 6;

/**
 * The slope of the last `trendSeconds`, projected `leadSeconds` ahead of the latest sample. Only a rising
 * trend that is still going on counts: the slope must also hold over the window's recent part (the smaller of
 * the two is used), so a ramp that has levelled off stops adding hosts at once instead of overshooting by a
 * whole lead's worth; and a falling trend never takes capacity away early (scale-in has its own window).
 */
function trend(samples: readonly DemandSample[], now: number, options: PredictorOptions): Forecast['trend'] {
  if (options.trendSeconds <= 0) return undefined;
  const from = now - options.trendSeconds * 1000;
  const recentFrom = now - options.trendSeconds * 1000 * TREND_RECENT_FRACTION;
  const window: DemandSample[] = [];
  for (let i = lastAtOrBefore(samples, now); i >= 0; i--) {
    const sample = samples[i] as DemandSample;
    if (sample.at < from) break;
    window.push(sample);
  }
  const whole = slope(window);
  // At least the newest three samples, whatever the cadence: a slope needs three to shrug off one noisy sample.
  const recentPart = window.filter((sample) => sample.at >= recentFrom);
  const recent = slope(recentPart.length >= 3 ? recentPart : window.slice(0, 3));
  if (whole === undefined || recent === undefined) return undefined;
  const slopePerSecond = Math.min(whole, recent);
  const latest = window[0] as DemandSample;
  return { sessions: latest.sessions + Math.max(0, slopePerSecond) * options.leadSeconds, slopePerSecond };
}

/**
 * Undefined without any history. `samples` must be sorted by time (the event log's order); samples after
 * `now` are ignored, so a replay of the history gives the forecasts that were made at the time.
 */
export function forecastDemand(
  samples: readonly DemandSample[],
  now: number,
  options: PredictorOptions,
): Forecast | undefined {
  if (lastAtOrBefore(samples, now) < 0) return undefined;
  const seasonalPart = seasonal(samples, now, options);
  const trendPart = trend(samples, now, options);
  if (seasonalPart === undefined && trendPart === undefined) return undefined;
  return {
    sessions: Math.max(seasonalPart?.sessions ?? 0, trendPart?.sessions ?? 0),
    ...(seasonalPart === undefined ? {} : { seasonal: seasonalPart }),
    ...(trendPart === undefined ? {} : { trend: trendPart }),
  };
}
