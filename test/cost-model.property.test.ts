import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_COST_SETTINGS,
  inboxDelayQuantile,
  inboxPollsPerHostPerMonth,
  monthlyBill,
  withSettings,
} from '../shared/cost/model.ts';
import { SECONDS_PER_MONTH, US_EAST_1 } from '../shared/cost/prices.ts';

const hosts = fc.integer({ min: 0, max: 100_000 });
const idle = fc.double({ min: 0, max: 900, noNaN: true });
const wait = fc.integer({ min: 1, max: 20 });
const changes = fc.double({ min: 0, max: 500, noNaN: true });

describe('the cost model', () => {
  it('never costs less for more hosts', () => {
    fc.assert(
      fc.property(hosts, hosts, idle, changes, (a, b, idleSeconds, changesPerHostPerDay) => {
        const [fewer, more] = a <= b ? [a, b] : [b, a];
        const at = (n: number) =>
          monthlyBill(
            withSettings({
              hosts: n,
              inbox: { idleSeconds },
              snapshots: { changesPerHostPerDay },
              rollouts: { hostsPerRollout: n },
            }),
          ).totalUsd;
        expect(at(more)).toBeGreaterThanOrEqual(at(fewer) - 1e-9);
      }),
    );
  });

  it('never costs less when the agents poll more often', () => {
    fc.assert(
      fc.property(idle, idle, wait, hosts, (a, b, waitSeconds, n) => {
        const [often, seldom] = a <= b ? [a, b] : [b, a];
        const at = (idleSeconds: number) =>
          monthlyBill(withSettings({ hosts: n, inbox: { waitSeconds, idleSeconds } })).totalUsd;
        expect(at(often)).toBeGreaterThanOrEqual(at(seldom) - 1e-9);
      }),
    );
  });

  it('has a break-down that sums to its total, by line and by service', () => {
    fc.assert(
      fc.property(hosts, idle, changes, (n, idleSeconds, changesPerHostPerDay) => {
        const bill = monthlyBill(
          withSettings({ hosts: n, inbox: { idleSeconds }, snapshots: { changesPerHostPerDay } }),
        );
        const byLine = bill.lines.reduce((sum, line) => sum + line.usd, 0);
        const byService = Object.values(bill.byService).reduce((sum, usd) => sum + usd, 0);
        expect(byLine).toBeCloseTo(bill.totalUsd, 6);
        expect(byService).toBeCloseTo(bill.totalUsd, 6);
        for (const line of bill.lines) expect(line.usd).toBeGreaterThanOrEqual(0);
      }),
    );
  });

  it('prices the inbox at one SQS request per long poll and pause, for every host', () => {
    fc.assert(
      fc.property(hosts, wait, idle, (n, waitSeconds, idleSeconds) => {
        const bill = monthlyBill(withSettings({ hosts: n, inbox: { waitSeconds, idleSeconds } }));
        const line = bill.lines.find((l) => l.id === 'sqs.inbox-polls');
        const expected = (n * SECONDS_PER_MONTH) / (waitSeconds + idleSeconds);
        expect(line?.quantity).toBeCloseTo(expected, 3);
        expect(line?.usd).toBeCloseTo((expected * US_EAST_1.sqsPerMillionRequests) / 1e6, 6);
      }),
    );
  });

  it('gives a pause delay quantile inside [0, idle), rising with the quantile and the pause', () => {
    fc.assert(
      fc.property(wait, idle, fc.double({ min: 0, max: 1, noNaN: true }), (waitSeconds, idleSeconds, q) => {
        const delay = inboxDelayQuantile({ waitSeconds, idleSeconds }, q);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(idleSeconds);
        expect(
          inboxDelayQuantile({ waitSeconds, idleSeconds }, Math.min(1, q + 0.01)),
        ).toBeGreaterThanOrEqual(delay);
        expect(inboxDelayQuantile({ waitSeconds, idleSeconds: idleSeconds + 1 }, q)).toBeGreaterThanOrEqual(
          delay,
        );
      }),
    );
  });

  it('meets the target at default settings: at most $73 a month for 1,000 hosts, p99 pause under 25 s', () => {
    const bill = monthlyBill();
    expect(DEFAULT_COST_SETTINGS.hosts).toBe(1000);
    expect(bill.totalUsd).toBeLessThanOrEqual(73);
    expect(inboxDelayQuantile(DEFAULT_COST_SETTINGS.inbox, 0.99)).toBeLessThan(25);
    // The long poll back to back, as before the setting, does not: the inbox alone was about $53.
    const backToBack = monthlyBill(withSettings({ inbox: { idleSeconds: 0 } }));
    expect(backToBack.totalUsd).toBeGreaterThan(73);
    expect(inboxPollsPerHostPerMonth({ waitSeconds: 20, idleSeconds: 0 }) * 1000).toBeCloseTo(131.4e6, -5);
  });
});
