/**
 * us-east-1 list prices (on-demand, no free tier), as published by AWS in 2025–2026. Change them here; every
 * cost figure the benchmarks print is derived from this table.
 */
export const US_EAST_1 = {
  s3PutPer1000: 0.005,
  s3GetPer1000: 0.0004,
  sqsPerMillionRequests: 0.4,
  lambdaPerMillionInvocations: 0.2,
  /** arm64 */
  lambdaPerGbSecond: 0.0000133334,
  dynamoPerMillionWru: 0.625,
  dynamoPerMillionRru: 0.125,
  kmsPer10000Requests: 0.03,
} as const;

export const HOURS_PER_MONTH = 730;
