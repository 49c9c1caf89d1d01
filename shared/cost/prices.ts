/**
 * us-east-1 list prices (on-demand, no free tier), as published by AWS in 2025–2026. Change them here; every
 * cost figure (the model in shared/cost/model.ts, the benchmarks, `GET /cost`) is derived from this table.
 */
export const US_EAST_1 = {
  s3PutPer1000: 0.005,
  s3GetPer1000: 0.0004,
  s3StandardPerGbMonth: 0.023,
  /** Every SQS action is a request, an empty long poll included; each 64 KB of payload is one more. */
  sqsPerMillionRequests: 0.4,
  lambdaPerMillionInvocations: 0.2,
  /** arm64 */
  lambdaPerGbSecond: 0.0000133334,
  dynamoPerMillionWru: 0.625,
  dynamoPerMillionRru: 0.125,
  dynamoStoragePerGbMonth: 0.25,
  /** Symmetric requests (Decrypt, Encrypt, GenerateDataKey). */
  kmsPer10000Requests: 0.03,
  /** Asymmetric requests other than RSA 2048 (the ECC P-256 Sign of every desired state). */
  kmsAsymmetricPer10000Requests: 0.15,
  kmsPerKeyMonth: 1,
  /** A PublishBatch of up to 10 messages is one request per 64 KB of payload. */
  snsPerMillionPublishes: 0.5,
  stepFunctionsStandardPer1000Transitions: 0.025,
  eventBridgeSchedulerPerMillionInvocations: 1,
  cloudWatchLogsIngestionPerGb: 0.5,
  cloudWatchLogsStoragePerGbMonth: 0.03,
  /** First 10,000 metrics; a metric is one name with one set of dimension values. */
  cloudWatchCustomMetricPerMonth: 0.3,
  /** Standard resolution, per metric the alarm evaluates (a metric-math alarm pays for each metric in it). */
  cloudWatchAlarmMetricPerMonth: 0.1,
  cloudWatchDashboardPerMonth: 3,
  xrayPerMillionTracesRecorded: 5,
  apiGatewayRestPerMillionRequests: 3.5,
} as const;

export type PriceTable = { readonly [K in keyof typeof US_EAST_1]: number };

export const HOURS_PER_MONTH = 730;
export const SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600;
