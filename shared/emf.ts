/**
 * CloudWatch Embedded Metric Format: a JSON log line that CloudWatch turns into metric datapoints, so a
 * Lambda reports metrics by logging, without a PutMetricData request per datapoint.
 */
export interface EmfDatapoints {
  namespace: string;
  /** Dimension name → value; every metric of the line is reported under all of them. */
  dimensions?: Readonly<Record<string, string>>;
  /** Metric name → value (a count). */
  counts: Readonly<Record<string, number>>;
  /** Milliseconds since the epoch. */
  timestamp: number;
}

export function emfLine({ namespace, dimensions = {}, counts, timestamp }: EmfDatapoints): string {
  return JSON.stringify({
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [
        {
          Namespace: namespace,
          Dimensions: [Object.keys(dimensions)],
          Metrics: Object.keys(counts).map((Name) => ({ Name, Unit: 'Count' })),
        },
      ],
    },
    ...dimensions,
    ...counts,
  });
}
