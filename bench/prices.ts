// The price table lives with the cost model (shared/cost/prices.ts); the benchmarks read it from there.
export { HOURS_PER_MONTH, US_EAST_1 } from '../shared/cost/prices.ts';
