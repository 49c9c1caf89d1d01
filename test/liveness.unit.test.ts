import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIVENESS, isOverdue, silentSeconds } from '../shared/hosts/liveness.ts';
import { HOST_STATUSES } from '../shared/schemas.ts';
import { registeredHost } from './support/fixtures.ts';

const REGISTERED = '2026-11-25T00:00:00.000Z';
const OBSERVED = '2026-11-25T01:00:00.000Z';
const SEEN = '2026-11-25T02:00:00.000Z';
const at = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000);
const LIMIT = DEFAULT_LIVENESS.heartbeatSeconds * DEFAULT_LIVENESS.missedHeartbeats;

describe('silentSeconds', () => {
  it('counts from lastSeen, else the last observation, else the registration', () => {
    const now = at(SEEN, 30);
    expect(silentSeconds(registeredHost({ registeredAt: REGISTERED }), now)).toBe(2 * 3600 + 30);
    expect(silentSeconds(registeredHost({ registeredAt: REGISTERED, observedAt: OBSERVED }), now)).toBe(
      3600 + 30,
    );
    expect(
      silentSeconds(registeredHost({ registeredAt: REGISTERED, observedAt: OBSERVED, lastSeen: SEEN }), now),
    ).toBe(30);
  });
});

describe('isOverdue', () => {
  const running = registeredHost({ status: 'running', lastSeen: SEEN });

  it('matches the AWS agent heartbeat, three of them missed', () => {
    expect(DEFAULT_LIVENESS).toEqual({ heartbeatSeconds: 3600, missedHeartbeats: 3 });
  });

  it('is overdue only past heartbeatSeconds × missedHeartbeats of silence', () => {
    expect(isOverdue(running, at(SEEN, LIMIT), DEFAULT_LIVENESS)).toBe(false);
    expect(isOverdue(running, at(SEEN, LIMIT + 1), DEFAULT_LIVENESS)).toBe(true);
  });

  it('expects to hear from booting, running, draining and degraded hosts only', () => {
    const late = at(SEEN, LIMIT + 1);
    const overdue = HOST_STATUSES.filter((status) =>
      isOverdue(registeredHost({ status, lastSeen: SEEN }), late, DEFAULT_LIVENESS),
    );
    expect(overdue).toEqual(['booting', 'running', 'draining', 'degraded']);
  });

  it('leaves a launched host that never reported to the boot timeout', () => {
    const pending = registeredHost({ status: 'pending', registeredAt: REGISTERED });
    expect(isOverdue(pending, at(REGISTERED, 10 * LIMIT), DEFAULT_LIVENESS)).toBe(false);
  });

  it('is monotone in now: once overdue, a host stays overdue as time passes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...HOST_STATUSES),
        fc.integer({ min: 0, max: 30 * 24 * 3600 }),
        fc.integer({ min: 0, max: 30 * 24 * 3600 }),
        fc.integer({ min: 1, max: 24 * 3600 }),
        fc.integer({ min: 1, max: 10 }),
        (status, first, later, heartbeatSeconds, missedHeartbeats) => {
          const policy = { heartbeatSeconds, missedHeartbeats };
          const host = registeredHost({ status, lastSeen: SEEN });
          const earlier = at(SEEN, first);
          const afterwards = at(SEEN, first + later);
          if (isOverdue(host, earlier, policy)) expect(isOverdue(host, afterwards, policy)).toBe(true);
        },
      ),
    );
  });
});
