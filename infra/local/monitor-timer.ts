/**
 * What EventBridge Scheduler is to the monitor on AWS: a tick every `seconds`, driving the same handler with
 * the same (empty) event. A tick still running when the next is due makes that one skip, so two ticks never
 * run at once.
 */
export interface MonitorTimerOptions<T> {
  seconds: number;
  /** The monitor handler (method syntax: the handler takes any of its events, the timer gives it a tick). */
  tick(event: Record<string, never>): Promise<T>;
  /** What each tick did. */
  onTick?: (outcome: T) => void;
  /** A tick that threw; the next one runs as usual. Default: a line on stderr. */
  onError?: (error: unknown) => void;
  /** A tick skipped because the previous one still ran. */
  onSkip?: () => void;
}

export interface MonitorTimer {
  /** Ticks run so far (skipped ones not counted). */
  readonly ticks: number;
  /** Ticks skipped because the one before still ran. */
  readonly skipped: number;
  /** No tick starts after this; resolves once a running tick has ended. */
  stop(): Promise<void>;
}

export function startMonitorTimer<T>(options: MonitorTimerOptions<T>): MonitorTimer {
  let running: Promise<void> | undefined;
  let stopped = false;
  let ticks = 0;
  let skipped = 0;
  const onError =
    options.onError ??
    ((error: unknown) => process.stderr.write(`fleetfold: monitor tick failed: ${String(error)}\n`));
  const timer = setInterval(() => {
    if (stopped) return;
    if (running) {
      skipped += 1;
      options.onSkip?.();
      return;
    }
    ticks += 1;
    running = options
      .tick({})
      .then((outcome) => options.onTick?.(outcome))
      .catch((error: unknown) => onError(error))
      .finally(() => {
        running = undefined;
      });
  }, Math.max(0.05, options.seconds) * 1000);
  // The timer alone must not keep the process alive.
  timer.unref();
  return {
    get ticks() {
      return ticks;
    },
    get skipped() {
      return skipped;
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
