import { DescribeInstancesCommand, EC2Client, type Tag } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  createMonitorHandler,
  type InstanceDirectory,
  type InstanceStateChange,
  type MonitorDeps,
  type TickSummary,
  timeBucket,
} from '../functions/monitor/handler.ts';
import { Ec2InstanceOwners } from '../shared/adapters/ec2-fleet.ts';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
import { GroupService } from '../shared/groups/group-service.ts';
import type { GroupDocument } from '../shared/groups/group-state.ts';
import type { Rule } from '../shared/groups/model.ts';
import { DEFAULT_LIVENESS } from '../shared/hosts/liveness.ts';
import { assessGroup, episodeOf, willPlanAgain } from '../shared/monitor/assess.ts';
import { livenessOf, ruleContext, rulesOf } from '../shared/monitor/rule-context.ts';
import type { HostRecord } from '../shared/ports.ts';
import { claim, NO_LEASE } from '../shared/reconcile/lease.ts';
import { updateLease } from '../shared/reconcile/lease-store.ts';
import { evaluateRules } from '../shared/rules/evaluate.ts';
import type { Firing, RuleAction } from '../shared/rules/types.ts';
import {
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './support/memory-stores.ts';
import {
  convergedHosts,
  hostIdOf,
  RequestCounts,
  runningGroupDocument,
  webGroupDefinition,
} from './support/monitor-fixtures.ts';

/** A rule of a definition; "then" is the language's word, never a promise's. */
function rule(when: string, then: string): Rule {
  return { when, then };
}

const T0 = new Date('2026-12-01T12:00:00.000Z');
const TICK_SECONDS = 60;
const seconds = (n: number) => new Date(T0.getTime() + n * 1000);

interface Harness {
  deps: MonitorDeps;
  counts: RequestCounts;
  events: MemoryEventStore;
  documents: MemoryDocumentStore;
  hosts: MemoryHostStore;
  reconcile: RecordingReconcileStarter;
  logs: Record<string, unknown>[];
  setNow(at: Date): void;
  tick(): Promise<TickSummary>;
  /** Defines and starts the group through the group service (its stream and document), and seeds its hosts. */
  group(name: string, rules?: Rule[]): Promise<HostRecord[]>;
  update(hostId: string, change: (record: HostRecord) => void): Promise<void>;
}

/** The rules' view of a group with no heartbeat coalescing to allow for (the stores here write every one). */
const contextOf = (document: GroupDocument, records: readonly HostRecord[], now: Date) =>
  ruleContext(document, records, now, livenessOf(document, 0));

function harness(instances?: InstanceDirectory): Harness {
  let now = T0;
  const counts = new RequestCounts();
  const events = new MemoryEventStore();
  const documents = new MemoryDocumentStore();
  const hosts = new MemoryHostStore();
  const reconcile = new RecordingReconcileStarter();
  const logs: Record<string, unknown>[] = [];
  const deps: MonitorDeps = {
    events: counts.wrap('events', events),
    documents: counts.wrap('documents', documents),
    hosts: counts.wrap('hosts', hosts),
    reconcile: counts.wrap('reconcile', reconcile),
    now: () => now,
    tickSeconds: TICK_SECONDS,
    heartbeatCoalesceSeconds: 0,
    log: (line) => logs.push(line),
    ...(instances ? { instances } : {}),
  };
  const handler = createMonitorHandler(deps);
  const service = new GroupService({
    events,
    documents,
    reconcile: new RecordingReconcileStarter(),
    now: () => now,
    newId: () => 'x',
  });
  return {
    deps,
    counts,
    events,
    documents,
    hosts,
    reconcile,
    logs,
    setNow: (at) => {
      now = at;
    },
    tick: async () => (await handler({})) as TickSummary,
    group: async (name, rules) => {
      const definition = webGroupDefinition(name, { rules: rules ?? [] });
      await service.defineGroup(name, JSON.stringify(definition), 'json');
      await service.startGroup(name);
      const document = await documents.get<GroupDocument>('group', name);
      const records = convergedHosts(document?.body.compiled as GroupDocument['compiled'], now);
      for (const record of records) await hosts.create(record);
      return records;
    },
    update: async (hostId, change) => {
      const record = (await hosts.get(hostId)) as HostRecord;
      change(record);
      record.version += 1;
      await hosts.save(record);
    },
  };
}

async function alarmEvents(events: MemoryEventStore, group: string) {
  const page = await events.read<GroupEvent>(groupStream(group), { limit: 1000 });
  return page.events.filter((event) => event.type === 'AlarmRaised' || event.type === 'AlarmCleared');
}

describe('the monitor tick', () => {
  let h: Harness;
  beforeEach(() => {
    h = harness();
  });

  it('writes nothing, starts nothing and reads twice for an idle running group', async () => {
    await h.group('web');
    h.counts.reset();

    const summary = await h.tick();

    expect(summary).toMatchObject({
      groups: 1,
      due: 0,
      started: 0,
      alarmsRaised: 0,
      alarmsCleared: 0,
      failed: 0,
    });
    expect(h.reconcile.requests).toEqual([]);
    expect(h.counts.writes()).toBe(0);
    expect(h.counts.total()).toBeLessThanOrEqual(2);
    expect(summary.reads).toBe(h.counts.total());
  });

  it('starts one reconcile for a failed host, named after the group and the tick', async () => {
    await h.group('web');
    await h.update(hostIdOf('web', 'web', 1), (record) => {
      record.status = 'failed';
    });

    const summary = await h.tick();
    await h.tick();

    expect(summary).toMatchObject({ due: 1, started: 1 });
    const bucket = timeBucket({}, T0, TICK_SECONDS);
    expect(h.reconcile.requests[0]).toEqual({
      group: 'web',
      reason: expect.stringContaining('web-web-1 failed'),
      dedupeKey: `monitor-web-${bucket}`,
    });
    // The second tick of the same period asks for the same run: one run however often it is asked.
    expect(h.reconcile.runs).toBe(1);
  });

  it('starts one reconcile naming a host lost once it is silent past its heartbeats', async () => {
    await h.group('web');
    const threshold = DEFAULT_LIVENESS.heartbeatSeconds * DEFAULT_LIVENESS.missedHeartbeats;
    // Every other host keeps reporting; web-web-2 stops at T0.
    h.setNow(seconds(threshold + 60));
    for (const record of convergedHosts(runningGroupDocument(webGroupDefinition('web')).compiled, T0)) {
      if (record.hostId === 'web-web-2') continue;
      await h.update(record.hostId, (stored) => {
        stored.lastSeen = seconds(threshold).toISOString();
      });
    }

    const summary = await h.tick();

    expect(summary).toMatchObject({ due: 1, started: 1 });
    expect(h.reconcile.requests).toHaveLength(1);
    expect(h.reconcile.requests[0]?.reason).toMatch(/web-web-2 lost/);
    expect(h.reconcile.requests[0]?.reason).not.toMatch(/web-web-1/);
  });

  it('does not start a run while the one holding the group will plan again anyway', async () => {
    await h.group('web');
    await h.update(hostIdOf('web', 'web', 1), (record) => {
      record.status = 'failed';
    });
    // A run holds the group, and a trigger since took a ticket: the holder plans again before it ends.
    await updateLease(h.documents, 'web', T0, (lease) => claim(lease, 'run-a', T0, 3600));
    await updateLease(h.documents, 'web', T0, (lease) => claim(lease, 'run-b', T0, 3600));

    const summary = await h.tick();

    expect(summary).toMatchObject({ due: 1, started: 0, coalesced: 1 });
    expect(h.reconcile.requests).toEqual([]);
  });

  it('raises a rule alarm once over several ticks and clears it when its condition ends', async () => {
    await h.group('web', [rule('host.load > 0.9', 'alarm("hot host")')]);
    const hot = (load: number) =>
      h.update(hostIdOf('web', 'web', 1), (record) => {
        record.metrics = { load, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } };
      });
    await hot(0.95);

    const raisedBy = [];
    for (let i = 0; i < 3; i += 1) {
      h.setNow(seconds(i * TICK_SECONDS));
      raisedBy.push((await h.tick()).alarmsRaised);
    }
    expect(raisedBy).toEqual([1, 0, 0]);
    const opened = await alarmEvents(h.events, 'web');
    expect(opened).toHaveLength(1);
    expect(opened[0]?.data).toMatchObject({
      alarm: 'hot host',
      episode: 'rule[0]#web-web-1',
      hostIds: ['web-web-1'],
    });
    // An alarm is no action on hosts: nothing was started.
    expect(h.reconcile.requests).toEqual([]);

    await hot(0.2);
    h.setNow(seconds(3 * TICK_SECONDS));
    expect(await h.tick()).toMatchObject({ alarmsRaised: 0, alarmsCleared: 1 });
    expect((await h.documents.get<GroupDocument>('group', 'web'))?.body.openAlarms).toBeUndefined();

    // The condition returning is a new episode: a new alarm.
    await hot(0.99);
    h.setNow(seconds(4 * TICK_SECONDS));
    expect(await h.tick()).toMatchObject({ alarmsRaised: 1 });
    const all = await alarmEvents(h.events, 'web');
    expect(all.map((event) => event.type)).toEqual(['AlarmRaised', 'AlarmCleared', 'AlarmRaised']);
    expect(new Set(all.filter((e) => e.type === 'AlarmRaised').map((e) => e.eventId)).size).toBe(2);
  });

  it('skips a stopped group without reading its hosts', async () => {
    await h.group('web');
    await h.update(hostIdOf('web', 'web', 1), (record) => {
      record.status = 'failed';
    });
    await new GroupService({
      events: h.events,
      documents: h.documents,
      reconcile: new RecordingReconcileStarter(),
      now: () => T0,
      newId: () => 'x',
    }).stopGroup('web');
    h.counts.reset();

    const summary = await h.tick();

    expect(summary).toMatchObject({ groups: 0, skipped: 1, started: 0, reads: 1 });
    expect(h.counts.counts.get('hosts.list')).toBeUndefined();
    expect(h.reconcile.requests).toEqual([]);
  });

  it('keeps going past a group that fails, and says so', async () => {
    await h.group('alpha');
    await h.group('beta');
    await h.update(hostIdOf('beta', 'web', 1), (record) => {
      record.status = 'failed';
    });
    const list = h.deps.hosts.list.bind(h.deps.hosts);
    h.deps.hosts.list = async (filter, limit, cursor) => {
      if (filter.group === 'alpha') throw new Error('throttled');
      return list(filter, limit, cursor);
    };

    const summary = await h.tick();

    expect(summary).toMatchObject({ groups: 2, failed: 1, started: 1 });
    expect(h.logs).toContainEqual(
      expect.objectContaining({ msg: 'monitor failed on a group', group: 'alpha' }),
    );
  });

  it('pages through more groups than one listing holds', async () => {
    for (let i = 0; i < 105; i += 1) {
      const name = `g${String(i).padStart(3, '0')}`;
      await h.documents.put('group', name, runningGroupDocument(webGroupDefinition(name)), 0, T0);
      const document = runningGroupDocument(webGroupDefinition(name));
      for (const record of convergedHosts(document.compiled, T0, i * 10)) await h.hosts.create(record);
    }
    h.counts.reset();

    const summary = await h.tick();

    expect(summary).toMatchObject({ groups: 105, due: 0, started: 0 });
    expect(h.counts.counts.get('documents.list')).toBe(2);
    expect(h.counts.total() / 105).toBeLessThanOrEqual(2);
  });
});

describe('EC2 instance state changes', () => {
  const change = (instanceId: string, state: string): InstanceStateChange => ({
    version: '0',
    id: 'e-1',
    'detail-type': 'EC2 Instance State-change Notification',
    source: 'aws.ec2',
    account: '123456789012',
    time: T0.toISOString(),
    region: 'eu-west-1',
    resources: [`arn:aws:ec2:eu-west-1:123456789012:instance/${instanceId}`],
    detail: { 'instance-id': instanceId, state },
  });
  const directory: InstanceDirectory = {
    groupOfInstance: async (instanceId) =>
      instanceId === 'i-ours' ? { group: 'web', hostId: 'web-web-1' } : undefined,
  };

  it('reconciles the group of an instance of this stack that ended', async () => {
    const h = harness(directory);
    const outcome = await createMonitorHandler(h.deps)(change('i-ours', 'terminated'));
    expect(outcome).toMatchObject({ kind: 'ec2', group: 'web', executionId: 'exec-1' });
    expect(h.reconcile.requests).toEqual([
      {
        group: 'web',
        reason: 'instance i-ours (host web-web-1) is terminated',
        dedupeKey: 'ec2#i-ours#terminated',
      },
    ]);
  });

  it('ignores, with a log line, instances this stack did not launch and states that need nothing', async () => {
    const h = harness(directory);
    const handler = createMonitorHandler(h.deps);
    expect(await handler(change('i-foreign', 'stopped'))).toMatchObject({ ignored: expect.any(String) });
    expect(await handler(change('i-ours', 'running'))).toMatchObject({ ignored: expect.any(String) });
    expect(h.reconcile.requests).toEqual([]);
    expect(h.logs.filter((line) => line.msg === 'instance change ignored')).toHaveLength(2);
  });
});

describe('whose an instance is (EC2 tags)', () => {
  const client = new EC2Client({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 's' },
  });
  const ec2 = mockClient(client);
  const owners = new Ec2InstanceOwners({ client, stack: 'Fleetfold' });
  const tagged = (tags: Tag[]) =>
    ec2
      .on(DescribeInstancesCommand)
      .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1', Tags: tags }] }] });
  beforeEach(() => ec2.reset());

  it("names the group and host of this stack's instance", async () => {
    tagged([
      { Key: 'fleetfold:group', Value: 'web' },
      { Key: 'fleetfold:host-id', Value: 'web-web-1' },
      { Key: 'fleetfold:stack', Value: 'Fleetfold' },
    ]);
    expect(await owners.groupOfInstance('i-1')).toEqual({ group: 'web', hostId: 'web-web-1' });
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input).toEqual({ InstanceIds: ['i-1'] });
  });

  it("answers nothing for an untagged instance, another stack's, or one EC2 does not know", async () => {
    tagged([{ Key: 'Name', Value: 'bastion' }]);
    expect(await owners.groupOfInstance('i-1')).toBeUndefined();
    tagged([
      { Key: 'fleetfold:group', Value: 'web' },
      { Key: 'fleetfold:stack', Value: 'Other' },
    ]);
    expect(await owners.groupOfInstance('i-1')).toBeUndefined();
    ec2
      .on(DescribeInstancesCommand)
      .rejects(Object.assign(new Error('gone'), { name: 'InvalidInstanceID.NotFound' }));
    expect(await owners.groupOfInstance('i-1')).toBeUndefined();
  });
});

describe('the rule context', () => {
  const document = runningGroupDocument(webGroupDefinition('web'));

  it('shows converged hosts healthy, routed and heard from', () => {
    const context = contextOf(document, convergedHosts(document.compiled, T0), seconds(30));
    expect(context.group).toEqual({
      name: 'web',
      running: true,
      definitionVersion: 1,
      desired: { web: 2, lb: 1 },
      crashes: { web: 0, lb: 0 },
    });
    const web = context.hosts.find((host) => host.hostId === 'web-web-1');
    expect(web).toMatchObject({
      status: 'running',
      lastSeenSeconds: 30,
      healthy: true,
      balanced: true,
      inLb: true,
      restarts: 0,
      services: { web: { status: 'running', version: '1.0.0' } },
      metrics: { load: 0.2, 'sessions.voice': 0 },
    });
    expect(context.hosts.find((host) => host.hostId === 'web-lb-1')).toMatchObject({
      balanced: false,
      inLb: false,
    });
  });

  it('leaves out retired hosts but counts the ones that crashed', () => {
    const records = convergedHosts(document.compiled, T0);
    const crashed = records[0] as HostRecord;
    crashed.terminated = {
      instanceId: 'i-1',
      status: 'failed',
      at: T0.toISOString(),
      reason: 'instance ended unasked',
      afterSeq: crashed.lastChangeSeq,
    } as HostRecord['terminated'] & object;
    const context = contextOf(document, records, seconds(60));
    expect(context.hosts.map((host) => host.hostId)).not.toContain(crashed.hostId);
    expect(context.group.crashes.web).toBe(1);
  });

  it('counts a restart the control plane ordered in the last ten minutes, and a failed service as unhealthy', () => {
    const records = convergedHosts(document.compiled, T0);
    const host = records[0] as HostRecord;
    // The projection keeps when the reconcile restarted the host's services (StateAssigned for reason restart-service).
    host.restartedAt = [T0.toISOString()];
    if (host.observed?.software.web) host.observed.software.web.status = 'failed';
    const soon = contextOf(document, records, seconds(60)).hosts[0];
    const later = contextOf(document, records, seconds(11 * 60)).hosts[0];
    expect(soon).toMatchObject({ restarts: 1, healthy: false });
    expect(later?.restarts).toBe(0);
  });

  it('takes a host out of its balancer when the balancer was not told of it', () => {
    const records = convergedHosts(document.compiled, T0);
    const lb = records.find((record) => record.hostType === 'lb') as HostRecord;
    if (lb.assigned) lb.assigned.state.upstreams = { web: [] };
    const context = contextOf(document, records, seconds(1));
    expect(context.hosts.filter((host) => host.hostType === 'web').every((host) => !host.inLb)).toBe(true);
    expect(
      assessGroup(document, context, evaluateRules(rulesOf(document), context)).reconcile?.reason,
    ).toMatch(/default:add-to-lb/);
  });
});

describe('assessing a group', () => {
  const action = fc.oneof(
    fc.constantFrom<RuleAction>(
      { kind: 'boot' },
      { kind: 'replace' },
      { kind: 'reboot' },
      { kind: 'add-to-lb' },
      { kind: 'remove-from-lb' },
      { kind: 'drain' },
      { kind: 'diagnose' },
      { kind: 'restart-service' },
    ),
    fc.string().map((text): RuleAction => ({ kind: 'alarm', text })),
    fc.string().map((service): RuleAction => ({ kind: 'restart-service', service })),
    fc.integer({ min: -3, max: 3 }).map((delta): RuleAction => ({ kind: 'scale', hostType: 'web', delta })),
  );
  const firing: fc.Arbitrary<Firing> = fc.record(
    {
      ruleId: fc.constantFrom('default:boot-missing-hosts', 'rule[0]', 'rule[1]', 'rule[10]', 'other'),
      hostId: fc.constantFrom('web-web-1', 'web-web-2', 'ghost'),
      actions: fc.array(action, { maxLength: 4 }),
      because: fc.string(),
    },
    { requiredKeys: ['ruleId', 'actions', 'because'] },
  );
  const openAlarms = fc.dictionary(
    fc.constantFrom('rule[0]#web-web-1', 'rule[1]#*', 'rule[10]#web-web-2', 'replacements#web', 'other#x'),
    fc.record({ alarmId: fc.string(), raisedAt: fc.constant(T0.toISOString()) }),
  );
  const rules: Rule[] = [
    rule('host.load > 0.9', 'alarm("hot")'),
    rule('hosts.failed > 1', 'alarm("failures")'),
  ];

  it('is deterministic and never throws, whatever fires', () => {
    const base = runningGroupDocument(webGroupDefinition('web', { rules }));
    const context = contextOf(base, convergedHosts(base.compiled, T0), T0);
    fc.assert(
      fc.property(fc.array(firing, { maxLength: 12 }), openAlarms, (firings, open) => {
        const group = { ...base, openAlarms: open };
        const first = assessGroup(group, context, firings);
        expect(assessGroup(structuredClone(group), context, structuredClone(firings))).toEqual(first);
        // Only the reconcile's actions make a run due (a scale is recorded first, and is due only if it
        // changed a count); an episode is raised only while it is not open, and only the group's own rules'
        // episodes are cleared.
        const due = firings.some((f) =>
          f.actions.some((a) => a.kind !== 'alarm' && a.kind !== 'diagnose' && a.kind !== 'scale'),
        );
        expect(first.reconcile !== undefined).toBe(due);
        const scales = firings.some((f) => f.actions.some((a) => a.kind === 'scale'));
        expect((first.scale?.length ?? 0) > 0).toBe(scales);
        for (const alarm of first.raise) expect(open[alarm.episode]).toBeUndefined();
        for (const episode of first.clear) {
          expect(open[episode]).toBeDefined();
          expect(rulesOf(group).some((rule) => episode.startsWith(`${rule.id}#`))).toBe(true);
          expect(
            firings.some((f) => episodeOf(f) === episode && f.actions.some((a) => a.kind === 'alarm')),
          ).toBe(false);
        }
      }),
    );
  });

  it('finds nothing to do in an idle group', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        fc.boolean(),
        fc.double({ min: 0, max: 0.8, noNaN: true }),
        fc.integer({ min: 0, max: 3 * 3600 }),
        (web, balanced, load, silentFor) => {
          const document = runningGroupDocument(webGroupDefinition('web', { web, balanced, rules }));
          const records = convergedHosts(document.compiled, T0).map((record) => ({
            ...record,
            metrics: { load, sessions: { voice: 1, sms: 0, mms: 0, video: 0 } },
          }));
          const context = contextOf(document, records, seconds(silentFor));
          expect(assessGroup(document, context, evaluateRules(rulesOf(document), context))).toEqual({
            raise: [],
            clear: [],
          });
        },
      ),
    );
  });
});

describe('the lease, as the monitor reads it', () => {
  it('waits for a holder with unserved tickets, and for nothing else', () => {
    const held = claim(NO_LEASE, 'a', T0, 60);
    if (held.kind !== 'held') throw new Error('expected the lease');
    const queued = claim(held.lease, 'b', T0, 60);
    expect(willPlanAgain(undefined, T0)).toBe(false);
    expect(willPlanAgain(held.lease, T0)).toBe(false);
    expect(willPlanAgain(queued.lease, T0)).toBe(true);
    expect(willPlanAgain(queued.lease, seconds(61))).toBe(false);
  });
});
