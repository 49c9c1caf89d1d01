import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { StructuredLog, Telemetry } from '../shared/telemetry.ts';

/**
 * The Lambda side of the telemetry port: Powertools Logger (JSON lines with the request id, cold start and
 * function name, and the keys each entry point appends) and Metrics (EMF lines, flushed once per invocation,
 * with a ColdStart metric). Service name, namespace and log level come from the POWERTOOLS_* environment the
 * FleetFunction construct sets, which Powertools reads itself.
 *
 * Powertools Tracer is left out on purpose: it bundles aws-xray-sdk-core (+124 KB minified, +29 ms to import
 * cold), which would put three of the four bundles past 300 KB. Active tracing on the function still records
 * each invocation's segment, and Step Functions' tracing ties the reconcile's steps into one trace.
 */
export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The port the handlers and the event store count through. */
  readonly telemetry: Telemetry;
  /** The port the handlers log through. */
  readonly log: StructuredLog;
}

export function powertools(): Observability {
  const logger = new Logger();
  const metrics = new Metrics({ logger: metricsWarnings(logger) });
  return { logger, metrics, telemetry: powertoolsTelemetry(metrics), log: powertoolsLog(logger) };
}

/**
 * Most api requests and idle monitor ticks count nothing: Powertools would warn of that on every invocation,
 * a billed log line saying nothing. It goes to debug; every other warning of Metrics stays a warning.
 */
function metricsWarnings(logger: Logger) {
  return {
    debug: (message: string) => logger.debug(message),
    info: (message: string) => logger.info(message),
    warn: (message: string) =>
      message.startsWith('No application metrics to publish') ? logger.debug(message) : logger.warn(message),
    error: (message: string) => logger.error(message),
  };
}

/**
 * Metrics without a dimension of their own wait in the invocation's one EMF line; one with a reason or a kind
 * goes out at once as a single metric (Powertools publishes one dimension set per line).
 */
export function powertoolsTelemetry(metrics: Metrics): Telemetry {
  return {
    count(metric, value, dimension) {
      if (value <= 0) return;
      if (!dimension) {
        metrics.addMetric(metric, MetricUnit.Count, value);
        return;
      }
      const single = metrics.singleMetric();
      for (const [name, dimensionValue] of Object.entries(dimension))
        single.addDimension(name, dimensionValue);
      single.addMetric(metric, MetricUnit.Count, value);
    },
    milliseconds(metric, value) {
      metrics.addMetric(metric, MetricUnit.Milliseconds, value);
    },
  };
}

export function powertoolsLog(logger: Logger): StructuredLog {
  return (level, message, fields = {}) => logger[level](message, fields);
}

/**
 * The handler in middy with the Logger's context (reset after each invocation, so one request's keys never
 * reach the next) and the metrics flush; `keys` appends what the event says it is about (a group, a host, an
 * execution) to every line of the invocation.
 */
export function observed<E, R>(
  handler: (event: E) => Promise<R>,
  { logger, metrics }: Pick<Observability, 'logger' | 'metrics'>,
  keys?: (event: E) => Record<string, unknown>,
) {
  const wrapped = middy<E, R, Error, Context>(async (event: E) => handler(event))
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
  if (!keys) return wrapped;
  return wrapped.use({
    before: (request) => {
      const found = Object.entries(keys(request.event)).filter(([, value]) => value !== undefined);
      if (found.length > 0) logger.appendKeys(Object.fromEntries(found));
    },
  });
}
