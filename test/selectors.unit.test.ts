import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import type { SelectableHost } from '../shared/groups/model.ts';
import {
  compareVersions,
  describeSelector,
  parseSelector,
  type Selector,
  SelectorError,
  type SizeExpression,
  selectHosts,
  selectorSize,
} from '../shared/groups/selectors.ts';

function host(hostId: string, overrides: Partial<SelectableHost> = {}): SelectableHost {
  return { hostId, versions: { media: '2.1.0' }, liveSessions: 0, load: 0, ...overrides };
}

function thrown(text: string): SelectorError {
  try {
    parseSelector(text);
  } catch (error) {
    if (error instanceof SelectorError) return error;
    throw error;
  }
  throw new Error(`"${text}" parsed`);
}

const size = (text: string, total: number) => selectorSize(parseSelector(text), total);

describe('parseSelector', () => {
  it('parses every form of the grammar', () => {
    expect(parseSelector('all')).toEqual({ filters: [], sizes: [{ kind: 'all' }] });
    expect(parseSelector('3')).toEqual({ filters: [], sizes: [{ kind: 'count', count: 3 }] });
    expect(parseSelector('20%')).toEqual({ filters: [], sizes: [{ kind: 'percent', percent: 20 }] });
    expect(parseSelector(' ids( a-1 , b.2 ) ')).toEqual({
      filters: [{ kind: 'ids', ids: ['a-1', 'b.2'] }],
      sizes: [],
    });
    expect(parseSelector('max(33, 20%)')).toEqual({
      filters: [],
      sizes: [
        {
          kind: 'max',
          of: [
            { kind: 'count', count: 33 },
            { kind: 'percent', percent: 20 },
          ],
        },
      ],
    });
    expect(parseSelector('version=1.2.* and min(2, max(1, 10%)) & version != 1.2.3')).toEqual({
      filters: [
        { kind: 'version', operator: '=', pattern: '1.2.*' },
        { kind: 'version', operator: '!=', pattern: '1.2.3' },
      ],
      sizes: [
        {
          kind: 'min',
          of: [
            { kind: 'count', count: 2 },
            {
              kind: 'max',
              of: [
                { kind: 'count', count: 1 },
                { kind: 'percent', percent: 10 },
              ],
            },
          ],
        },
      ],
    });
  });

  it('parses every version comparison, with "==" as a synonym of "="', () => {
    for (const operator of ['=', '!=', '<', '<=', '>', '>='] as const) {
      expect(parseSelector(`version${operator}2.0`).filters).toEqual([
        { kind: 'version', operator, pattern: '2.0' },
      ]);
    }
    expect(parseSelector('version == 2.0').filters).toEqual([
      { kind: 'version', operator: '=', pattern: '2.0' },
    ]);
  });

  it('rejects a missing size with the offending token, its 1-based position and a caret line', () => {
    const error = thrown('max(1,)');
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain('unexpected ")" at position 7 in "max(1,)"');
    expect(error.message.split('\n').slice(1)).toEqual(['max(1,)', '      ^']);
    expect(error.details).toEqual({ selector: 'max(1,)', position: 7 });
  });

  it('rejects an unknown word, naming the whole word', () => {
    const error = thrown('3 & largest(2)');
    expect(error.message).toContain('unexpected "largest" at position 5');
    expect(error.details.position).toBe(5);
  });

  it('rejects an unterminated expression as an unexpected end', () => {
    expect(thrown('ids(a, b').message).toContain('unexpected end at position 9 in "ids(a, b"');
    expect(thrown('').message).toContain('unexpected end at position 1');
  });

  it('rejects terms that are not joined by "&" or "and"', () => {
    expect(thrown('3 20%').message).toContain('unexpected "2" at position 3');
  });

  it('rejects an empty id list and a missing version', () => {
    expect(thrown('ids()').details.position).toBe(5);
    expect(thrown('version>=').message).toContain('expected a version');
  });

  it('rejects a glob with an ordering comparison, pointing at the star', () => {
    const error = thrown('version<1.*');
    expect(error.message).toContain('"*" is only allowed with "=" and "!="');
    expect(error.details.position).toBe(11);
  });

  it('rejects a percentage above 100', () => {
    expect(thrown('max(1, 150%)').message).toContain('percentage 150% is above 100% at position 8');
  });

  it('rejects a filter inside max()', () => {
    expect(thrown('max(1, version=2)').message).toContain('unexpected "version" at position 8');
  });
});

describe('selectorSize', () => {
  it('evaluates counts, percentages, all, max and min against the total', () => {
    expect(size('3', 10)).toBe(3);
    expect(size('3', 2)).toBe(2);
    expect(size('20%', 10)).toBe(2);
    expect(size('20%', 4)).toBe(0);
    expect(size('all', 7)).toBe(7);
    expect(size('max(33, 20%)', 1000)).toBe(200);
    expect(size('max(33, 20%)', 100)).toBe(33);
    expect(size('min(3, 50%)', 10)).toBe(3);
    expect(size('max(1, 25%)', 1)).toBe(1);
  });

  it('applies the smallest of several sizes and ignores filters', () => {
    expect(size('5 & 20% & version=9.*', 20)).toBe(4);
    expect(size('ids(a)', 6)).toBe(6);
  });

  it('computes percentages exactly (no floating-point loss)', () => {
    fc.assert(
      fc.property(fc.nat(10_000), fc.integer({ min: 0, max: 100 }), (total, percent) => {
        const allowed = size(`${percent}%`, total);
        return allowed * 100 <= total * percent && (allowed + 1) * 100 > total * percent;
      }),
    );
  });
});

describe('compareVersions', () => {
  it('compares dotted parts numerically, missing parts as 0', () => {
    expect(compareVersions('1.10.0', '1.9.9')).toBe(1);
    expect(compareVersions('2', '2.0')).toBe(0);
    expect(compareVersions('13.2', '13.10')).toBe(-1);
  });

  it('orders by semver precedence: a pre-release comes before its release', () => {
    expect(compareVersions('1.5.0-rc.1', '1.5.0')).toBe(-1);
    expect(compareVersions('1.2.0', '1.2.0-rc1')).toBe(1);
    expect(compareVersions('1.5.0-rc.1', '1.4.9')).toBe(1);
    expect(compareVersions('1.5.0+build.7', '1.5.0+build.8')).toBe(0);
  });

  it('follows the precedence chain of semver.org §11', () => {
    const chain = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '2.0.0',
      '2.1.0',
      '2.1.1',
    ];
    fc.assert(
      fc.property(fc.nat(chain.length - 1), fc.nat(chain.length - 1), (i, j) => {
        return compareVersions(chain[i] as string, chain[j] as string) === Math.sign(i - j);
      }),
    );
  });

  it('falls back to dotted parts for versions that are not semver', () => {
    expect(compareVersions('abc.2', 'abc.10')).toBe(-1);
    expect(compareVersions('2024-spring', '2024-autumn')).toBe(1);
  });

  it('is a total order on safe version strings: antisymmetric and transitive', () => {
    const part = fc.oneof(fc.nat(20).map(String), fc.constantFrom('rc', 'alpha', 'beta', 'x'));
    const version = fc
      .tuple(
        fc.array(part, { minLength: 1, maxLength: 3 }),
        fc.option(fc.array(part, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      )
      .map(([core, pre]) => core.join('.') + (pre ? `-${pre.join('.')}` : ''));
    fc.assert(
      fc.property(version, version, version, (a, b, c) => {
        const ab = compareVersions(a, b);
        if (ab !== -compareVersions(b, a) && !(ab === 0 && compareVersions(b, a) === 0)) return false;
        if (ab <= 0 && compareVersions(b, c) <= 0) return compareVersions(a, c) <= 0;
        return true;
      }),
    );
  });
});

describe('selectHosts', () => {
  const fleet = [
    host('m-1', { versions: { media: '2.1.0' }, load: 0.5 }),
    host('m-2', { versions: { media: '2.0.3' }, load: 0.1 }),
    host('m-3', { versions: { media: '2.1.0' }, liveSessions: 4, load: 0 }),
    host('m-4', { versions: { media: '1.9.0', db: '2.1.0' }, load: 0.1 }),
    host('db-1', { versions: { db: '13.2' } }),
  ];
  const ids = (text: string, service?: string) =>
    selectHosts(parseSelector(text), fleet, service).map((h) => h.hostId);

  it('prefers hosts without live sessions, then the least loaded, then by id', () => {
    expect(ids('all')).toEqual(['db-1', 'm-2', 'm-4', 'm-1', 'm-3']);
    expect(ids('2')).toEqual(['db-1', 'm-2']);
  });

  it('filters by id and by the version of the given service', () => {
    expect(ids('ids(m-3, m-1, nope)')).toEqual(['m-1', 'm-3']);
    expect(ids('version=2.*', 'media')).toEqual(['m-2', 'm-1', 'm-3']);
    expect(ids('version>=2.0.3 & version!=2.1.*', 'media')).toEqual(['m-2']);
    expect(ids('version<2', 'media')).toEqual(['m-4']);
  });

  it('leaves out hosts that do not run the service from every version filter', () => {
    expect(ids('version!=9', 'media')).not.toContain('db-1');
  });

  it('matches any service version when no service is named', () => {
    expect(ids('version=2.1.0')).toEqual(['m-4', 'm-1', 'm-3']);
  });

  it('takes sizes relative to the filtered set', () => {
    expect(ids('version=2.* & 34%', 'media')).toEqual(['m-2']);
  });
});

/* ───────────── properties ───────────── */

const hostId = fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/);
const version = fc
  .array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 })
  .map((parts) => parts.join('.'));
const hosts: fc.Arbitrary<SelectableHost[]> = fc.uniqueArray(
  fc.record({
    hostId,
    versions: fc.record({ media: version }, { requiredKeys: [] }),
    liveSessions: fc.oneof(fc.constant(0), fc.nat(5)),
    load: fc.constantFrom(0, 0.25, 0.5, 1),
  }),
  { selector: (h) => h.hostId, maxLength: 25 },
);

const sizeExpression: fc.Arbitrary<SizeExpression> = fc.letrec<{ size: SizeExpression }>((tie) => ({
  size: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<SizeExpression>({ kind: 'all' }),
    fc.nat(40).map<SizeExpression>((count) => ({ kind: 'count', count })),
    fc.integer({ min: 0, max: 100 }).map<SizeExpression>((percent) => ({ kind: 'percent', percent })),
    fc
      .tuple(
        fc.constantFrom('max' as const, 'min' as const),
        fc.array(tie('size'), { minLength: 1, maxLength: 3 }),
      )
      .map<SizeExpression>(([kind, of]) => ({ kind, of })),
  ),
})).size;

const versionPattern = fc.oneof(
  version,
  version.map((v) => `${v.split('.')[0]}.*`),
);
const filter = fc.oneof(
  fc.uniqueArray(hostId, { minLength: 1, maxLength: 4 }).map((ids) => ({ kind: 'ids' as const, ids })),
  fc
    .tuple(fc.constantFrom('=' as const, '!=' as const), versionPattern)
    .map(([operator, pattern]) => ({ kind: 'version' as const, operator, pattern })),
  fc
    .tuple(fc.constantFrom('<' as const, '<=' as const, '>' as const, '>=' as const), version)
    .map(([operator, pattern]) => ({ kind: 'version' as const, operator, pattern })),
);
const selector: fc.Arbitrary<Selector> = fc
  .record({
    filters: fc.array(filter, { maxLength: 2 }),
    sizes: fc.array(sizeExpression, { maxLength: 2 }),
  })
  .filter((s) => s.filters.length + s.sizes.length > 0);

describe('selector properties', () => {
  it('selects exactly selectorSize of the hosts that pass the filters', () => {
    fc.assert(
      fc.property(selector, hosts, (s, fleet) => {
        const filtered = selectHosts({ filters: s.filters, sizes: [] }, fleet, 'media');
        expect(selectHosts(s, fleet, 'media')).toHaveLength(selectorSize(s, filtered.length));
      }),
    );
  });

  it('selects a subset of the input, without duplicates', () => {
    fc.assert(
      fc.property(selector, hosts, (s, fleet) => {
        const picked = selectHosts(s, fleet, 'media');
        expect(picked.every((h) => fleet.includes(h))).toBe(true);
        expect(new Set(picked.map((h) => h.hostId)).size).toBe(picked.length);
      }),
    );
  });

  it('selects the same hosts whatever the input order', () => {
    fc.assert(
      fc.property(
        selector,
        hosts.chain((fleet) =>
          fc.tuple(fc.constant(fleet), fc.shuffledSubarray(fleet, { minLength: fleet.length })),
        ),
        (s, [fleet, shuffled]) => {
          expect(selectHosts(s, shuffled, 'media')).toEqual(selectHosts(s, fleet, 'media'));
        },
      ),
    );
  });

  it('never picks a host with live sessions while a sessionless candidate is left out', () => {
    fc.assert(
      fc.property(selector, hosts, (s, fleet) => {
        const picked = new Set(selectHosts(s, fleet, 'media').map((h) => h.hostId));
        const candidates = selectHosts({ filters: s.filters, sizes: [] }, fleet, 'media');
        const busyPicked = candidates.some((h) => h.liveSessions > 0 && picked.has(h.hostId));
        const idleLeftOut = candidates.some((h) => h.liveSessions === 0 && !picked.has(h.hostId));
        expect(busyPicked && idleLeftOut).toBe(false);
      }),
    );
  });

  it('parses what describeSelector prints back into the same selector', () => {
    fc.assert(
      fc.property(selector, (s) => {
        expect(parseSelector(describeSelector(s))).toEqual(s);
      }),
    );
  });

  it('fails on arbitrary text only with a SelectorError pointing inside the text or just past it', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (text) => {
        try {
          parseSelector(text);
        } catch (error) {
          expect(error).toBeInstanceOf(SelectorError);
          const position = (error as SelectorError).details.position as number;
          expect(position).toBeGreaterThanOrEqual(1);
          expect(position).toBeLessThanOrEqual(text.length + 1);
        }
      }),
    );
  });
});
