import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FleetfoldError, TooLargeError, ValidationError } from '../shared/errors.ts';
import { compileGroup, definitionFormat, parseGroupDefinition } from '../shared/groups/compile.ts';
import { validateGroupDefinition } from '../shared/groups/definition-schema.ts';
import { DependencyCycleError } from '../shared/groups/graph.ts';
import type { GroupDefinition, HostTypeDefinition } from '../shared/groups/model.ts';

const sample = (name: string) => readFileSync(new URL(`../events/groups/${name}`, import.meta.url), 'utf8');

function hostType(services: string[], overrides: Partial<HostTypeDefinition> = {}): HostTypeDefinition {
  return {
    roles: ['worker'],
    instanceType: 'c7g.large',
    count: 1,
    services: Object.fromEntries(services.map((service) => [service, { version: '1.0.0' }])),
    ...overrides,
  };
}

/** A valid three-tier group to break one thing at a time. */
function definition(change: (d: GroupDefinition) => void = () => {}): GroupDefinition {
  const d = validateGroupDefinition({
    name: 'shop',
    hostTypes: {
      db: hostType(['db']),
      app: hostType(['app'], { count: 2 }),
      lb: hostType(['lb'], { balances: ['app'] }),
    },
    dependencies: { db: [], app: ['db'], lb: [] },
  });
  change(d);
  return d;
}

function rejection(run: () => unknown): FleetfoldError {
  try {
    run();
  } catch (error) {
    if (error instanceof FleetfoldError) return error;
    throw error;
  }
  throw new Error('accepted');
}

const compileRejection = (change: (d: GroupDefinition) => void) =>
  rejection(() => compileGroup(definition(change), 1));

const errorsOf = (error: FleetfoldError) => error.details.errors as { path: string; message: string }[];

describe('parseGroupDefinition', () => {
  it('reads the demo telephony group from YAML', () => {
    const demo = parseGroupDefinition(sample('demo-telephony.yaml'), 'yaml');
    expect(demo.name).toBe('demo');
    expect(Object.keys(demo.hostTypes).sort()).toEqual(['call-router', 'db', 'lb', 'media']);
    expect(demo.hostTypes.lb?.balances).toEqual(['call-router']);
    expect(demo.hostTypes.media?.channels).toEqual(['voice', 'video']);
    expect(demo.configuration.drain).toEqual({
      waitForSessions: true,
      timeoutSeconds: 30,
      onTimeout: 'proceed',
    });
    expect(demo.configuration.rules.map((rule) => [rule.when, rule.then])).toContainEqual([
      'host.status == failed',
      'replace',
    ]);
  });

  it('keeps versions and config values as typed, even where YAML sees numbers', () => {
    const text = [
      'name: g',
      'hostTypes:',
      '  a:',
      '    roles: [a]',
      '    instanceType: t4g.small',
      '    count: 1',
      '    services:',
      '      a: { version: 2.10, config: { port: 5060, tls: true } }',
      'dependencies: { a: [] }',
    ].join('\n');
    const service = parseGroupDefinition(text, 'yaml').hostTypes.a?.services.a;
    expect(service).toEqual({ version: '2.10', config: { port: '5060', tls: 'true' } });
  });

  it('reads the same definition from JSON (the two demo samples agree)', () => {
    const demo = parseGroupDefinition(sample('demo-telephony.yaml'), 'yaml');
    expect(parseGroupDefinition(sample('demo-telephony.json'), 'json')).toEqual(demo);
  });

  it('fills the documented defaults', () => {
    const text = JSON.stringify({ name: 'g', hostTypes: { a: hostType(['a']) }, dependencies: { a: [] } });
    expect(parseGroupDefinition(text, 'json').configuration).toEqual({
      rollout: { wave: 'max(1, 25%)', surgeFirst: true, convergenceTimeoutSeconds: 300 },
      drain: { waitForSessions: true, timeoutSeconds: 600, onTimeout: 'proceed' },
      disruptionBudget: 'max(1, 25%)',
      rules: [],
      liveness: { heartbeatSeconds: 3600, missedHeartbeats: 3 },
    });
  });

  it('fills defaults inside a partly given section', () => {
    const text =
      'name: g\nhostTypes: { a: { roles: [a], instanceType: t, count: 1, services: { a: { version: "1" } } } }\ndependencies: { a: [] }\nconfiguration: { rollout: { surgeFirst: false } }';
    expect(parseGroupDefinition(text, 'yaml').configuration.rollout).toEqual({
      wave: 'max(1, 25%)',
      surgeFirst: false,
      convergenceTimeoutSeconds: 300,
    });
  });

  it('rejects a negative count, naming the field path', () => {
    const text = JSON.stringify({
      name: 'g',
      hostTypes: { media: hostType(['media'], { count: -1 }) },
      dependencies: {},
    });
    const error = rejection(() => parseGroupDefinition(text, 'json'));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain('hostTypes.media.count: expected a non-negative integer');
    expect(errorsOf(error)).toContainEqual({
      path: 'hostTypes.media.count',
      message: 'expected a non-negative integer',
    });
  });

  it('rejects unknown fields, missing fields and bad values, naming each path', () => {
    const text = [
      'name: Shop',
      'hostTypes:',
      '  a:',
      '    roles: [a]',
      '    instanceTypo: t4g.small',
      '    count: 1',
      '    channels: [fax]',
      '    services: { a: { version: "1", port: 70000 } }',
      'dependencies: { a: [] }',
      'configuration: { drain: { onTimeout: wait }, rules: [{ when: x }] }',
    ].join('\n');
    const paths = errorsOf(rejection(() => parseGroupDefinition(text, 'yaml'))).map(
      (e) => `${e.path}: ${e.message}`,
    );
    expect(paths).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^name: expected a name/),
        'hostTypes.a: unknown field "instanceTypo"',
        'hostTypes.a.instanceType: is required',
        'hostTypes.a.channels[0]: expected one of voice, sms, mms, video',
        expect.stringMatching(/^hostTypes\.a\.services\.a\.port: expected a port number/),
        'configuration.drain.onTimeout: expected "proceed" or "fail"',
        'configuration.rules[0].then: is required',
      ]),
    );
  });

  it('rejects a definition with no host types', () => {
    const error = rejection(() =>
      parseGroupDefinition('{"name":"g","hostTypes":{},"dependencies":{}}', 'json'),
    );
    expect(error.message).toContain('hostTypes: expected at least one host type');
  });

  it('rejects something that is not a definition at all', () => {
    expect(rejection(() => parseGroupDefinition('', 'yaml')).message).toContain('expected an object');
    expect(rejection(() => parseGroupDefinition('[1]', 'json')).message).toContain('expected an object');
  });

  it('rejects malformed YAML, with the line', () => {
    const error = rejection(() => parseGroupDefinition('name: g\nhostTypes: [a\n', 'yaml'));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain('not valid YAML');
    expect(error.details.line).toBeTypeOf('number');
  });

  it('rejects a YAML key given twice', () => {
    expect(rejection(() => parseGroupDefinition('name: a\nname: b\n', 'yaml')).message).toContain(
      'not valid YAML',
    );
  });

  it('rejects malformed JSON', () => {
    expect(rejection(() => parseGroupDefinition('{"name": ', 'json')).message).toContain('not valid JSON');
  });

  it('rejects a definition above the size limit', () => {
    const error = rejection(() => parseGroupDefinition(`# ${'x'.repeat(300 * 1024)}\nname: g`, 'yaml'));
    expect(error).toBeInstanceOf(TooLargeError);
  });

  it('tells the format from the file name', () => {
    expect(definitionFormat('groups/demo.yaml')).toBe('yaml');
    expect(definitionFormat('demo.YML')).toBe('yaml');
    expect(definitionFormat('demo.json')).toBe('json');
    expect(definitionFormat('demo.txt')).toBeUndefined();
  });
});

describe('compileGroup', () => {
  it('compiles the demo group: levels, start order, dependents, hosts and balancers', () => {
    const compiled = compileGroup(parseGroupDefinition(sample('demo-telephony.yaml'), 'yaml'), 3);
    expect(compiled.name).toBe('demo');
    expect(compiled.definitionVersion).toBe(3);
    expect(compiled.startOrder).toEqual(['db', 'media', 'call-router', 'lb']);
    expect(
      Object.fromEntries(Object.values(compiled.hostTypes).map((t) => [t.name, [t.level, t.desired]])),
    ).toEqual({ db: [0, 1], media: [1, 2], 'call-router': [2, 2], lb: [3, 1] });
    expect(compiled.serviceLevels).toEqual([['db', 'lb'], ['media'], ['call-router']]);
    expect(compiled.dependents).toEqual({
      'call-router': [],
      db: ['call-router', 'media'],
      lb: [],
      media: ['call-router'],
    });
    expect(compiled.serviceHosts['call-router']).toEqual(['call-router']);
    expect(compiled.balancedBy).toEqual({ 'call-router': ['lb'], db: [], lb: [], media: [] });
    expect(compiled.configuration.rollout.wave).toBe('max(1, 25%)');
    expect(compiled.hostTypes.media?.services.media?.version).toBe('2.1.0');
  });

  it('takes min as the desired count when no count is given', () => {
    const compiled = compileGroup(
      definition((d) => {
        d.hostTypes.app = hostType(['app'], { count: undefined, min: 3, max: 5 });
      }),
      1,
    );
    expect(compiled.hostTypes.app?.desired).toBe(3);
  });

  it('places a load balancer above what it balances unless its own services say more', () => {
    const above = compileGroup(definition(), 1);
    expect(above.hostTypes.lb?.level).toBe(2);
    const higher = compileGroup(
      definition((d) => {
        d.dependencies = { db: [], app: ['db'], lb: ['cache'], cache: ['store'], store: ['disk'], disk: [] };
        d.hostTypes.store = hostType(['store', 'disk', 'cache']);
      }),
      1,
    );
    expect(higher.hostTypes.lb?.level).toBe(3);
    expect(higher.startOrder).toEqual(['db', 'app', 'store', 'lb']);
  });

  it('rejects the cyclic sample, naming the cycle as a path', () => {
    const error = rejection(() => compileGroup(parseGroupDefinition(sample('cyclic.yaml'), 'yaml'), 1));
    expect(error).toBeInstanceOf(DependencyCycleError);
    expect(error.message).toBe('dependency cycle: call-router → media → call-router');
    expect(error.details).toEqual({ cycle: ['call-router', 'media', 'call-router'] });
  });

  it('rejects a three-service cycle as a → b → c → a', () => {
    const error = compileRejection((d) => {
      d.dependencies = { ...d.dependencies, a: ['b'], b: ['c'], c: ['a'] };
      d.hostTypes.abc = hostType(['a', 'b', 'c']);
    });
    expect(error.message).toBe('dependency cycle: a → b → c → a');
  });

  it('rejects a cycle that runs through a load balancer', () => {
    const error = compileRejection((d) => {
      d.dependencies.app = ['db', 'lb'];
    });
    expect(error).toBeInstanceOf(DependencyCycleError);
    expect(error.message).toContain('through a load balancer');
    expect(error.details.cycle).toEqual(['app', 'lb', 'app']);
  });

  it('rejects a host type running a service missing from dependencies', () => {
    const error = compileRejection((d) => {
      d.hostTypes.app = hostType(['app', 'cache']);
    });
    expect(errorsOf(error)).toEqual([
      {
        path: 'hostTypes.app.services.cache',
        message: 'unknown service "cache" (every service must be listed under dependencies)',
      },
    ]);
    expect(error.message).toContain(
      'group "shop" is invalid: hostTypes.app.services.cache: unknown service "cache"',
    );
  });

  it('rejects a dependency on an undefined service', () => {
    const error = compileRejection((d) => {
      d.dependencies.app = ['db', 'queue'];
    });
    expect(errorsOf(error)).toEqual([
      { path: 'dependencies.app', message: '"app" depends on unknown service "queue"' },
    ]);
  });

  it('rejects a dependency on a service that no host type runs', () => {
    const error = compileRejection((d) => {
      d.dependencies = { ...d.dependencies, queue: [], app: ['db', 'queue'] };
    });
    expect(errorsOf(error)).toEqual([
      { path: 'dependencies.app', message: '"app" depends on "queue", which no host type runs' },
    ]);
  });

  it('rejects balancing an unknown service', () => {
    const error = compileRejection((d) => {
      d.hostTypes.lb = hostType(['lb'], { balances: ['app', 'web'] });
    });
    expect(errorsOf(error)).toEqual([
      {
        path: 'hostTypes.lb.balances',
        message: 'unknown service "web" (every service must be listed under dependencies)',
      },
    ]);
  });

  it('rejects balancing a service that no other host type runs', () => {
    const error = compileRejection((d) => {
      d.hostTypes.lb = hostType(['lb', 'db'], { balances: ['db'] });
      delete d.hostTypes.db;
    });
    expect(errorsOf(error)).toContainEqual({
      path: 'hostTypes.lb.balances',
      message: 'balances "db", which no other host type runs: there is nothing to balance',
    });
  });

  it('rejects a host type with no services', () => {
    const error = compileRejection((d) => {
      d.hostTypes.idle = hostType([]);
    });
    expect(errorsOf(error)).toEqual([
      { path: 'hostTypes.idle.services', message: 'a host type must run at least one service' },
    ]);
  });

  it('rejects min above max', () => {
    const error = compileRejection((d) => {
      d.hostTypes.app = hostType(['app'], { count: undefined, min: 4, max: 2 });
    });
    expect(errorsOf(error)).toEqual([{ path: 'hostTypes.app.min', message: 'min 4 is above max 2' }]);
  });

  it('rejects a count outside [min, max]', () => {
    const below = compileRejection((d) => {
      d.hostTypes.app = hostType(['app'], { count: 1, min: 2, max: 4 });
    });
    expect(errorsOf(below)).toEqual([{ path: 'hostTypes.app.count', message: 'count 1 is below min 2' }]);
    const above = compileRejection((d) => {
      d.hostTypes.app = hostType(['app'], { count: 5, min: 2, max: 4 });
    });
    expect(errorsOf(above)).toEqual([{ path: 'hostTypes.app.count', message: 'count 5 is above max 4' }]);
  });

  it('rejects a negative count', () => {
    const error = compileRejection((d) => {
      d.hostTypes.app = hostType(['app'], { count: -2 });
    });
    expect(errorsOf(error)).toEqual([
      { path: 'hostTypes.app.count', message: 'expected a non-negative integer' },
    ]);
  });

  it('rejects a host type with neither count nor min', () => {
    const error = compileRejection((d) => {
      d.hostTypes.app = hostType(['app'], { count: undefined, max: 3 });
    });
    expect(errorsOf(error)).toEqual([
      { path: 'hostTypes.app', message: 'give a count, or a min (and max) to scale between' },
    ]);
  });

  it('rejects both an image and a launch template', () => {
    const error = compileRejection((d) => {
      d.hostTypes.app = hostType(['app'], { image: 'ami-1', launchTemplate: 'app' });
    });
    expect(errorsOf(error)).toEqual([
      { path: 'hostTypes.app', message: 'give an image or a launchTemplate, not both' },
    ]);
  });

  it('rejects an unparsable wave, naming the field and the position', () => {
    const error = compileRejection((d) => {
      d.configuration.rollout.wave = 'max(1,)';
    });
    expect(errorsOf(error)).toEqual([
      {
        path: 'configuration.rollout.wave',
        message: expect.stringContaining('unexpected ")" at position 7 in "max(1,)"'),
      },
    ]);
  });

  it('rejects an unparsable disruption budget, naming the field', () => {
    const error = compileRejection((d) => {
      d.configuration.disruptionBudget = '25 percent';
    });
    expect(errorsOf(error)[0]?.path).toBe('configuration.disruptionBudget');
    expect(error.message).toContain('configuration.disruptionBudget: unexpected "percent" at position 4');
  });

  it('rejects a wave that filters hosts instead of sizing them', () => {
    const error = compileRejection((d) => {
      d.configuration.rollout.wave = 'version=1.* & 2';
    });
    expect(errorsOf(error)[0]?.message).toContain('filters hosts (version=1.*)');
  });

  it('rejects a wave or budget that lets no host through when there is one', () => {
    const error = compileRejection((d) => {
      d.configuration.rollout.wave = '20%';
      d.configuration.disruptionBudget = '0';
    });
    expect(errorsOf(error).map((e) => e.path)).toEqual([
      'configuration.rollout.wave',
      'configuration.disruptionBudget',
    ]);
    expect(errorsOf(error)[0]?.message).toContain('use e.g. "max(1, 20%)"');
  });

  it('lists every problem at once', () => {
    const error = compileRejection((d) => {
      d.hostTypes.app = hostType(['app', 'cache'], { count: undefined, min: 3, max: 1 });
      d.dependencies.app = ['db', 'queue'];
    });
    expect(errorsOf(error).map((e) => e.path)).toEqual([
      'hostTypes.app.services.cache',
      'hostTypes.app.min',
      'dependencies.app',
    ]);
  });
});

/* ───────────── properties ───────────── */

/** A random service DAG (service i depends only on services below i), each service on its own host type. */
const dagDefinition = fc
  .integer({ min: 1, max: 10 })
  .chain((size) =>
    fc.tuple(
      ...Array.from({ length: size }, (_, i) =>
        fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, i - 1) }), { maxLength: i === 0 ? 0 : 3 }),
      ),
    ),
  )
  .map((edges) => {
    const dependencies = Object.fromEntries(
      edges.map((deps, i) => [`s${i}`, deps.filter((d) => d < i).map((d) => `s${d}`)]),
    );
    const hostTypes = Object.fromEntries(edges.map((_, i) => [`t${i}`, hostType([`s${i}`])]));
    return validateGroupDefinition({ name: 'g', hostTypes, dependencies });
  });

describe('compile properties', () => {
  it('compiles every acyclic definition so that each host type starts after the host types it depends on', () => {
    fc.assert(
      fc.property(dagDefinition, (d) => {
        const compiled = compileGroup(d, 1);
        const position = new Map(compiled.startOrder.map((name, index) => [name, index]));
        for (const [service, deps] of Object.entries(d.dependencies)) {
          const dependent = compiled.serviceHosts[service]?.[0] as string;
          for (const dep of deps) {
            const provider = compiled.serviceHosts[dep]?.[0] as string;
            expect(compiled.hostTypes[provider]?.level).toBeLessThan(
              compiled.hostTypes[dependent]?.level as number,
            );
            expect(position.get(provider)).toBeLessThan(position.get(dependent) as number);
          }
        }
      }),
    );
  });

  it('rejects any acyclic definition plus a back edge with a cycle named as a closed path', () => {
    const withBackEdge = dagDefinition
      .filter((d) => Object.values(d.dependencies).some((deps) => deps.length > 0))
      .chain((d) => {
        const edges = Object.entries(d.dependencies).flatMap(([s, deps]) =>
          deps.map((dep) => [s, dep] as const),
        );
        return fc.constantFrom(...edges).map(([from, to]) => {
          const copy = structuredClone(d);
          copy.dependencies[to]?.push(from);
          return copy;
        });
      });
    fc.assert(
      fc.property(withBackEdge, (d) => {
        const error = rejection(() => compileGroup(d, 1));
        expect(error).toBeInstanceOf(DependencyCycleError);
        const cycle = error.details.cycle as string[];
        expect(cycle[0]).toBe(cycle.at(-1));
        expect(error.message).toBe(`dependency cycle: ${cycle.join(' → ')}`);
      }),
    );
  });
});
