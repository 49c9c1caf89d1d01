import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { groupView } from '../functions/api/routes/groups.ts';
import { FleetfoldError, ValidationError } from '../shared/errors.ts';
import { compileGroup, parseGroupDefinition, withEffectiveRules } from '../shared/groups/compile.ts';
import { stateOfDocument } from '../shared/groups/group-state.ts';
import type { CompiledGroup, Rule } from '../shared/groups/model.ts';
import {
  type CompiledRule,
  compileRules,
  DEFAULT_RULES,
  effectiveRules,
  evaluateRules,
  type Firing,
  parseActions,
  parseCondition,
  printActions,
  printCondition,
  type RuleContext,
  type RuleGroup,
  type RuleHost,
  RuleSyntaxError,
} from '../shared/rules/index.ts';

const demoText = readFileSync(new URL('../events/groups/demo-telephony.yaml', import.meta.url), 'utf8');

const names = {
  hostTypes: ['db', 'media', 'call-router', 'lb'],
  services: ['db', 'media', 'call-router', 'lb'],
};

const rule = (when: string, then: string): Rule => ({ when, then });

function rejection(run: () => unknown): FleetfoldError {
  try {
    run();
  } catch (error) {
    if (error instanceof FleetfoldError) return error;
    throw error;
  }
  throw new Error('accepted');
}

const errorsOf = (error: FleetfoldError) => error.details.errors as { path: string; message: string }[];

function host(hostId: string, overrides: Partial<RuleHost> = {}): RuleHost {
  return {
    hostId,
    hostType: 'media',
    roles: ['media'],
    status: 'running',
    lastSeenSeconds: 5,
    services: { media: { status: 'running', version: '2.1.0' } },
    load: 0.2,
    sessions: {},
    metrics: {},
    restarts: 0,
    healthy: true,
    inLb: false,
    balanced: false,
    ...overrides,
  };
}

function context(hosts: RuleHost[], group: Partial<RuleGroup> = {}): RuleContext {
  return {
    group: { name: 'demo', running: true, definitionVersion: 3, desired: {}, crashes: {}, ...group },
    hosts,
  };
}

/** Compiles the rules alone (no defaults) and evaluates them. */
function fire(rules: Rule[], ctx: RuleContext): Firing[] {
  return evaluateRules(compileRules(rules, names), ctx);
}

describe('compileRules', () => {
  it("compiles the demo group's rules after the defaults, in normal form", () => {
    const compiled = compileGroup(parseGroupDefinition(demoText, 'yaml'), 4);
    const own = compiled.rules.filter((r) => r.source === 'definition');
    expect(own.map((r) => [r.id, r.index, r.scope, r.when, r.then])).toEqual([
      ['rule[0]', 0, 'host', 'host.status == failed', 'replace'],
      ['rule[1]', 1, 'group', 'group.running and hosts.booted == 0', 'boot'],
    ]);
    expect(compiled.rules.slice(0, DEFAULT_RULES.length).map((r) => r.id)).toEqual(
      DEFAULT_RULES.map((r) => `default:${r.name}`),
    );
  });

  it('prints conditions and actions in one normal form', () => {
    const [compiled] = compileRules(
      [
        rule(
          '!(host.load>0.8||host.sessions.voice>=10)&&host.role=="media"',
          'restart-service( media ),alarm( "hot" )',
        ),
      ],
      names,
    );
    expect(compiled?.when).toBe('not (host.load > 0.8 or host.sessions.voice >= 10) and host.role == media');
    expect(compiled?.then).toBe('restart-service(media), alarm("hot")');
  });

  it('keeps the grouping of parentheses that matter, and only those', () => {
    const text = 'host.healthy and (host.inLb or host.balanced) or (group.running and not host.healthy)';
    expect(printCondition(parseCondition(text))).toBe(
      'host.healthy and (host.inLb or host.balanced) or group.running and not host.healthy',
    );
  });

  it('reads a scale as a delta when signed, as a count when not', () => {
    expect(parseActions('scale(media, +2), scale(media, -1), scale(db, 3)', names)).toEqual([
      { kind: 'scale', hostType: 'media', delta: 2 },
      { kind: 'scale', hostType: 'media', delta: -1 },
      { kind: 'scale', hostType: 'db', count: 3 },
    ]);
    expect(printActions(parseActions('scale(media,+2),scale(db,3)'))).toBe('scale(media, +2), scale(db, 3)');
  });

  it('makes a rule whose condition reads a host field a host rule, else a group rule', () => {
    const scopes = compileRules(
      [
        rule('group.running', 'boot'),
        rule('hosts.running(media) < 2', 'scale(media, +1), alarm("few media hosts")'),
        rule('host.load > 0.9', 'drain'),
        rule('hosts.count(media) > 1 and host.role == media', 'scale(media, -1)'),
        rule('true', 'boot'),
      ],
      names,
    ).map((r) => r.scope);
    expect(scopes).toEqual(['group', 'group', 'host', 'host', 'group']);
  });

  /** [when, then, index, part, message]: every kind of rejection names the rule, its part and the position. */
  const rejections: [string, string, number, 'when' | 'then', string][] = [
    ['host.status ==', 'replace', 2, 'when', 'rule 2 (when): unexpected end at position 15'],
    ['host.status == failed)', 'replace', 0, 'when', 'rule 0 (when): unexpected ")" at position 22'],
    ['host.staus == failed', 'replace', 2, 'when', 'rule 2 (when): unknown field "host.staus" at position 1'],
    ['group.running and hots.count > 1', 'boot', 1, 'when', 'unknown field "hots.count" at position 19'],
    ['hosts.running(medai) < 2', 'boot', 0, 'when', 'unknown host type "medai" at position 15'],
    ['host.hostType == medai', 'replace', 0, 'when', 'unknown host type "medai" at position 18'],
    [
      'hosts.count < 1',
      'scale(medai, +1)',
      3,
      'then',
      'rule 3 (then): unknown host type "medai" at position 7',
    ],
    ['host.service.medai.status == failed', 'replace', 0, 'when', 'unknown service "medai" at position 14'],
    ['host.healthy', 'restart-service(medai)', 0, 'then', 'unknown service "medai" at position 17'],
    ['host.load > high', 'drain', 1, 'when', '"host.load" is a number, compared to "high" at position 13'],
    ['hosts.failed >= "2"', 'boot', 0, 'when', '"hosts.failed" is a number, compared to "2" at position 17'],
    [
      'host.status < failed',
      'replace',
      0,
      'when',
      '"<" orders numbers, and "host.status" is text at position 13',
    ],
    ['host.status == runing', 'replace', 0, 'when', 'unknown host status "runing" at position 16'],
    ['host.load', 'drain', 0, 'when', '"host.load" is a number, not a condition at position 1'],
    ['host.load = 1', 'drain', 0, 'when', 'unexpected "=" at position 11: compare with "=="'],
    ['host.healthy', 'rebot', 4, 'then', 'rule 4 (then): unknown action "rebot" at position 1'],
    ['host.healthy', 'alarm', 0, 'then', 'alarm needs a text at position 1'],
    ['host.healthy', 'replace, alarm()', 0, 'then', 'alarm needs a text at position 16'],
    ['host.healthy', 'alarm(oops)', 0, 'then', 'unexpected "oops" at position 7'],
    ['host.healthy', 'replace,', 0, 'then', 'unexpected end at position 9'],
    ['hosts.failed > 0', 'boot, drain', 1, 'then', 'rule 1 (then): "drain" acts on a host at position 7'],
    ['group.running', 'replace', 0, 'then', '"replace" acts on a host at position 1'],
  ];

  for (const [when, then, index, part, message] of rejections) {
    it(`rejects ${JSON.stringify(part === 'when' ? when : then)}, naming rule ${index} (${part}) and the position`, () => {
      const rules = [...Array.from({ length: index }, () => rule('group.running', 'boot')), rule(when, then)];
      const error = rejection(() => compileRules(rules, names));
      expect(error).toBeInstanceOf(ValidationError);
      const errors = errorsOf(error);
      expect(errors).toHaveLength(1);
      expect(errors[0]?.path).toBe(`configuration.rules[${index}].${part}`);
      expect(errors[0]?.message).toContain(message);
      expect(errors[0]?.message.startsWith(`rule ${index} (${part}): `)).toBe(true);
    });
  }

  it('lists every problem of every rule, when and then alike', () => {
    const error = rejection(() =>
      compileRules(
        [
          rule('host.staus == failed', 'rebot'),
          rule('host.healthy', 'replace'),
          rule('hosts.count > x', 'boot'),
        ],
        names,
      ),
    );
    expect(errorsOf(error).map((e) => e.path)).toEqual([
      'configuration.rules[0].when',
      'configuration.rules[0].then',
      'configuration.rules[2].when',
    ]);
  });

  it('fails parseCondition with the position in details, the text and a caret in the message', () => {
    const error = rejection(() => parseCondition('host.load > "x"'));
    expect(error).toBeInstanceOf(RuleSyntaxError);
    expect(error.details).toEqual({ text: 'host.load > "x"', position: 13 });
    expect(error.message.split('\n')).toEqual([
      '"host.load" is a number, compared to "x" at position 13: compare it to a number',
      'host.load > "x"',
      '            ^',
    ]);
  });

  it('suggests the nearest field for a typo', () => {
    expect(() => parseCondition('host.lastSeen > 60')).toThrow(/did you mean "host.lastSeenSeconds"/);
  });
});

describe('compileGroup and rules', () => {
  it('rejects a definition whose rules do not compile, beside its other problems', () => {
    const definition = parseGroupDefinition(demoText, 'yaml');
    definition.configuration.rules.push(rule('host.service.nope.status == failed', 'restart-service'));
    definition.configuration.disruptionBudget = '0';
    const error = rejection(() => compileGroup(definition, 1));
    expect(errorsOf(error).map((e) => e.path)).toEqual([
      'configuration.disruptionBudget',
      'configuration.rules[2].when',
    ]);
    expect(error.message).toContain('rule 2 (when): unknown service "nope" at position 14');
  });

  it('gives a group without rules the defaults', () => {
    const definition = parseGroupDefinition(demoText, 'yaml');
    definition.configuration.rules = [];
    expect(compileGroup(definition, 1).rules).toEqual(effectiveRules([]));
  });

  it('gives a group document stored before rules were compiled its effective rules when read back', () => {
    const definition = parseGroupDefinition(demoText, 'yaml');
    const { rules: _, ...old } = compileGroup(definition, 1);
    const document = {
      definition,
      compiled: old as CompiledGroup,
      running: true,
      definitionVersion: 1,
      streamVersion: 1,
      runVersion: 1,
    };
    const expected = compileGroup(definition, 1).rules;
    expect(withEffectiveRules(old as CompiledGroup, definition).rules).toEqual(expected);
    expect(stateOfDocument(document).compiled?.rules).toEqual(expected);
    const shown = groupView('demo', document).compiled.rules.map(({ id, source, when, then }) => ({
      id,
      source,
      when,
      then,
    }));
    expect(shown[0]).toEqual({
      id: 'default:boot-missing-hosts',
      source: 'default',
      when: 'group.running and hosts.count < hosts.desired',
      // biome-ignore lint/suspicious/noThenProperty: a rule's part, never awaited.
      then: 'boot',
    });
    expect(shown.at(-1)?.id).toBe('rule[1]');
  });
});

describe('default rules', () => {
  it('compile, come first, and are marked as defaults', () => {
    const rules = effectiveRules(compileRules([rule('host.load > 0.9', 'drain')], names));
    expect(rules.map((r) => r.source)).toEqual([...DEFAULT_RULES.map(() => 'default'), 'definition']);
    expect(rules.filter((r) => r.source === 'default').every((r) => r.index === -1)).toBe(true);
    expect(rules.map((r) => r.scope)).toEqual([
      'group',
      'host',
      'host',
      'host',
      'host',
      'host',
      'group',
      'host',
    ]);
  });

  const defaults = effectiveRules([]);

  it('boot missing hosts only while the group runs', () => {
    const hosts = [host('m1')];
    expect(evaluateRules(defaults, context(hosts, { desired: { media: 2, db: 1 } }))).toEqual([
      {
        ruleId: 'default:boot-missing-hosts',
        actions: [{ kind: 'boot' }],
        because: 'group.running = true, hosts.count = 1, hosts.desired = 3',
      },
    ]);
    expect(evaluateRules(defaults, context(hosts, { running: false, desired: { media: 2 } }))).toEqual([]);
  });

  it('replace failed and lost hosts, restart a failed service, then give up on it', () => {
    const failedService = { media: { status: 'failed', version: '2.1.0' } };
    const firings = evaluateRules(
      defaults,
      context([
        host('d', { status: 'lost' }),
        host('c', { services: failedService, restarts: 3 }),
        host('b', { services: failedService, restarts: 1 }),
        host('a', { status: 'failed' }),
      ]),
    );
    expect(firings.map((f) => [f.ruleId, f.hostId, printActions(f.actions)])).toEqual([
      ['default:replace-failed-host', 'a', 'replace'],
      ['default:replace-failed-host', 'd', 'replace'],
      ['default:restart-failed-service', 'b', 'restart-service'],
      [
        'default:replace-after-restarts',
        'c',
        'replace, alarm("service keeps failing after 3 restarts in 10 minutes")',
      ],
    ]);
  });

  it('add healthy balanced hosts to the load balancer and take unhealthy ones out', () => {
    const firings = evaluateRules(
      defaults,
      context([
        host('a', { balanced: true, healthy: true, inLb: false }),
        host('b', { balanced: true, healthy: false, inLb: true }),
        host('c', { balanced: true, healthy: true, inLb: true }),
        host('d', { balanced: false, healthy: true, inLb: false }),
      ]),
    );
    expect(firings.map((f) => [f.ruleId, f.hostId])).toEqual([
      ['default:add-to-lb', 'a'],
      ['default:remove-from-lb', 'b'],
    ]);
  });

  it('alarm on repeated crashes over the group', () => {
    const firings = evaluateRules(defaults, context([host('a')], { crashes: { media: 2, db: 1 } }));
    expect(firings).toEqual([
      {
        ruleId: 'default:alarm-repeated-crashes',
        actions: [{ kind: 'alarm', text: 'repeated host failures' }],
        because: 'hosts.crashes = 3',
      },
    ]);
  });
});

describe('evaluateRules', () => {
  it('counts aggregates over one host type when filtered', () => {
    const hosts = [
      host('m1', { status: 'running' }),
      host('m2', { status: 'booting' }),
      host('m3', { status: 'failed' }),
      host('r1', { hostType: 'call-router', status: 'running' }),
      host('r2', { hostType: 'call-router', status: 'degraded' }),
    ];
    const ctx = context(hosts, { desired: { media: 4, 'call-router': 2 }, crashes: { media: 1 } });
    const rules = [
      rule('hosts.running(media) < 2 and hosts.running == 2', 'scale(media, +1)'),
      rule('hosts.booted(media) == 2 and hosts.booted == 4 and hosts.failed(media) == 1', 'alarm("booted")'),
      rule('hosts.count(call-router) == hosts.desired(call-router)', 'alarm("routers complete")'),
      rule('hosts.count(media) < hosts.desired(media)', 'scale(media, 4)'),
      rule('hosts.crashes(media) == 1 and hosts.crashes(db) == 0 and hosts.lost == 0', 'alarm("crashes")'),
      rule('hosts.running(db) > 0', 'alarm("never")'),
    ];
    expect(fire(rules, ctx).map((f) => f.ruleId)).toEqual([
      'rule[0]',
      'rule[1]',
      'rule[2]',
      'rule[3]',
      'rule[4]',
    ]);
  });

  it("matches host.role against any of the host's roles; != means none of them", () => {
    const hosts = [
      host('a', { roles: ['media', 'edge'] }),
      host('b', { roles: ['media'] }),
      host('c', { roles: [] }),
    ];
    expect(fire([rule('host.role == edge', 'drain')], context(hosts)).map((f) => f.hostId)).toEqual(['a']);
    expect(fire([rule('host.role != edge', 'drain')], context(hosts)).map((f) => f.hostId)).toEqual([
      'b',
      'c',
    ]);
    expect(fire([rule('host.role == media', 'drain')], context(hosts))[0]?.because).toBe(
      'host.role = [media, edge]',
    );
  });

  it('finds a comparison with a missing metric or service false, whichever the operator', () => {
    const hosts = [host('a', { metrics: { cpu: 0.9 } }), host('b'), host('c', { services: {} })];
    const hostsOf = (when: string) => fire([rule(when, 'diagnose')], context(hosts)).map((f) => f.hostId);
    expect(hostsOf('host.metrics.cpu > 0.5')).toEqual(['a']);
    expect(hostsOf('host.metrics.cpu != 0.1')).toEqual(['a']);
    expect(hostsOf('not host.metrics.cpu > 0.5')).toEqual(['b', 'c']);
    expect(hostsOf('host.metrics.constructor >= 0 or host.metrics.toString == 0')).toEqual([]);
    expect(hostsOf('host.service.media.status == running')).toEqual(['a', 'b']);
    expect(hostsOf('host.service.media.status != running')).toEqual([]);
    expect(fire([rule('not host.metrics.cpu > 0.5', 'diagnose')], context([host('b')]))[0]?.because).toBe(
      'host.metrics.cpu = (missing)',
    );
  });

  it('reads sessions per channel and in total, and counts failed services', () => {
    const hosts = [
      host('a', { sessions: { voice: 3, video: 2 } }),
      host('b', {
        sessions: { sms: 1 },
        services: {
          media: { status: 'failed', version: '1' },
          db: { status: 'failed', version: '1' },
          lb: { status: 'running', version: '1' },
        },
      }),
    ];
    const hostsOf = (when: string) => fire([rule(when, 'diagnose')], context(hosts)).map((f) => f.hostId);
    expect(hostsOf('host.sessions == 5 and host.sessions.voice == 3')).toEqual(['a']);
    expect(hostsOf('host.sessions.mms == 0')).toEqual([]);
    expect(hostsOf('host.services.failed == 2')).toEqual(['b']);
  });

  it("fires a host rule's group actions once, after its host actions, when any host matches", () => {
    const hosts = [host('m2', { load: 0.95 }), host('m1', { load: 0.9 }), host('m3', { load: 0.1 })];
    const firings = fire([rule('host.load > 0.8', 'drain, scale(media, +1), alarm("hot")')], context(hosts));
    expect(firings).toEqual([
      {
        ruleId: 'rule[0]',
        hostId: 'm1',
        actions: [{ kind: 'drain' }, { kind: 'alarm', text: 'hot' }],
        because: 'host.load = 0.9',
      },
      {
        ruleId: 'rule[0]',
        hostId: 'm2',
        actions: [{ kind: 'drain' }, { kind: 'alarm', text: 'hot' }],
        because: 'host.load = 0.95',
      },
      {
        ruleId: 'rule[0]',
        actions: [{ kind: 'scale', hostType: 'media', delta: 1 }],
        because: '2 hosts matched (m1, m2); m1: host.load = 0.9',
      },
    ]);
    expect(fire([rule('host.load > 0.99', 'scale(media, +1)')], context(hosts))).toEqual([]);
  });

  it('explains an or by the branch that held, whichever side it is', () => {
    const [firing] = fire(
      [rule('host.status == failed or host.lastSeenSeconds > 60', 'replace')],
      context([host('a', { lastSeenSeconds: 90 })]),
    );
    expect(firing?.because).toBe('host.lastSeenSeconds = 90');
    const [second] = fire(
      [rule('host.lastSeenSeconds > 60 or host.status == failed', 'replace')],
      context([host('a', { lastSeenSeconds: 90 })]),
    );
    expect(second?.because).toBe('host.lastSeenSeconds = 90');
  });

  it("does not let a caller's change to a firing reach the compiled rules", () => {
    const rules = compileRules([rule('group.running', 'alarm("x")')], names);
    const [firing] = evaluateRules(rules, context([]));
    (firing?.actions[0] as { text: string }).text = 'changed';
    expect(rules[0]?.actions).toEqual([{ kind: 'alarm', text: 'x' }]);
  });

  it('reads a rule in a shape it does not know as not firing, and still evaluates the others', () => {
    const [good] = compileRules([rule('group.running', 'boot')], names);
    const broken = { ...good, id: 'broken', condition: { kind: 'xor' } } as unknown as CompiledRule;
    const nullCondition = { ...good, id: 'null', condition: null } as unknown as CompiledRule;
    expect(
      evaluateRules([broken, nullCondition, good as CompiledRule], context([])).map((f) => f.ruleId),
    ).toEqual(['rule[0]']);
  });
});
