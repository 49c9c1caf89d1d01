import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { DeleteMessageBatchCommand, type Message, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AgentLogger } from '../agent/agent.ts';
import { AppliedStateStore } from '../agent/applied-state.ts';
import { Ec2Applier } from '../agent/apply/ec2-applier.ts';
import { LocalApplier } from '../agent/apply/local-applier.ts';
import { StateInbox } from '../agent/inbox.ts';
import {
  BroadcastLedger,
  BroadcastReceiver,
  type BroadcastReceiverOptions,
  type DependencyChange,
} from '../agent/notify.ts';
import { HostRuntime } from '../agent/runtime.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import { BROADCAST_WINDOW_MS, signBroadcast } from '../shared/groups/broadcast.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { signEnvelope } from '../shared/state-envelope.ts';

const NOW = new Date('2026-11-28T10:00:00.000Z');
const HOST = { hostId: 'h1', group: 'edge', roles: ['media', 'call-router'] };
const change = { kind: 'notify', service: 'db', reason: 'db 1.0.0 → 2.0.0', hostIds: ['h1', 'h2'] };

let keysDir: string;
let signer: LocalStateSigner;
let intruder: LocalStateSigner;
beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'fleetfold-notify-keys-'));
  signer = await LocalStateSigner.fromKeyFile(join(keysDir, 'control.pem'));
  intruder = await LocalStateSigner.fromKeyFile(join(keysDir, 'intruder.pem'));
});
afterAll(async () => {
  await rm(keysDir, { recursive: true, force: true });
});

let stateDir: string;
const cleanups: (() => Promise<void>)[] = [];
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-notify-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(stateDir, { recursive: true, force: true });
});

function recordingLogger() {
  const info: Record<string, unknown>[] = [];
  const warn: Record<string, unknown>[] = [];
  const logger: AgentLogger = { info: (r) => info.push(r), warn: (r) => warn.push(r) };
  return { logger, info, warn };
}

function broadcast(
  options: { role?: string; group?: string; messageId?: string; signedAt?: Date; by?: LocalStateSigner } = {},
  payload: Record<string, unknown> = change,
) {
  return signBroadcast(
    options.by ?? signer,
    { group: options.group ?? 'edge', role: options.role ?? 'media' },
    payload,
    options.signedAt ?? NOW,
    options.messageId ?? 'b-1',
  );
}

function receiver(overrides: Partial<BroadcastReceiverOptions> = {}) {
  const changes: DependencyChange[] = [];
  const { logger, info, warn } = recordingLogger();
  const receive = new BroadcastReceiver({
    ...HOST,
    publicKey: signer.publicKeyPem,
    ledger: new BroadcastLedger({ stateDir, hostId: 'h1' }),
    listener: { notify: async (c) => void changes.push(c) },
    clock: () => NOW,
    logger,
    ...overrides,
  });
  return { receive, changes, info, warn };
}

describe('BroadcastReceiver', () => {
  it('acts once on a fresh notify for its group and role, and logs the dependency change', async () => {
    const { receive, changes, info } = receiver();
    const receipt = await receive.receive(JSON.parse(JSON.stringify(await broadcast())));
    expect(receipt).toMatchObject({ status: 'acted', messageId: 'b-1' });
    expect(changes).toEqual([
      { service: 'db', reason: 'db 1.0.0 → 2.0.0', hostIds: ['h1', 'h2'], messageId: 'b-1' },
    ]);
    expect(info).toEqual([
      {
        hostId: 'h1',
        msg: 'dependency changed',
        service: 'db',
        reason: 'db 1.0.0 → 2.0.0',
        messageId: 'b-1',
      },
    ]);
  });

  it('rejects a replayed message id, also after a restart, without acting again', async () => {
    const first = receiver();
    const envelope = await broadcast();
    expect((await first.receive.receive(envelope)).status).toBe('acted');
    expect(await first.receive.receive(envelope)).toMatchObject({ status: 'refused', reason: 'replayed' });

    const restarted = receiver();
    expect(await restarted.receive.receive(envelope)).toMatchObject({
      status: 'refused',
      reason: 'replayed',
    });
    expect(restarted.changes).toEqual([]);
    expect(restarted.info).toMatchObject([
      { msg: 'broadcast refused', reason: 'replayed', messageId: 'b-1' },
    ]);
    // A new id from the same sender is a new message.
    expect((await restarted.receive.receive(await broadcast({ messageId: 'b-2' }))).status).toBe('acted');
  });

  it('rejects the same id delivered twice in one go, acting once', async () => {
    const { receive, changes } = receiver();
    const envelope = await broadcast();
    const receipts = await Promise.all([receive.receive(envelope), receive.receive(envelope)]);
    expect(receipts.map((r) => r.status)).toEqual(['acted', 'refused']);
    expect(changes).toHaveLength(1);
  });

  it('rejects a tampered one, one signed with another key, and one that is not a broadcast', async () => {
    const { receive, changes, warn } = receiver();
    const good = await broadcast();
    const tampered = { ...good, payload: { ...change, service: 'api' } };
    expect(await receive.receive(tampered)).toMatchObject({ status: 'refused', reason: 'bad-signature' });
    expect(await receive.receive(await broadcast({ by: intruder }))).toMatchObject({
      reason: 'bad-signature',
    });
    expect(await receive.receive({ role: 'media' })).toMatchObject({ reason: 'malformed' });
    expect(changes).toEqual([]);
    expect(warn.map((w) => [w.msg, w.reason])).toEqual([
      ['broadcast refused', 'bad-signature'],
      ['broadcast refused', 'bad-signature'],
      ['broadcast refused', 'malformed'],
    ]);
  });

  it('rejects one for a role or group not its own', async () => {
    const { receive, changes, warn } = receiver();
    expect(await receive.receive(await broadcast({ role: 'db' }))).toMatchObject({
      status: 'refused',
      reason: 'not-for-me',
    });
    expect(await receive.receive(await broadcast({ group: 'core' }))).toMatchObject({ reason: 'not-for-me' });
    expect(changes).toEqual([]);
    expect(warn).toHaveLength(2);
  });

  it('rejects one signed outside the window of its clock, either way', async () => {
    const { receive, changes, warn } = receiver();
    const old = new Date(NOW.getTime() - BROADCAST_WINDOW_MS - 1_000);
    const ahead = new Date(NOW.getTime() + BROADCAST_WINDOW_MS + 1_000);
    expect(await receive.receive(await broadcast({ signedAt: old, messageId: 'b-old' }))).toMatchObject({
      status: 'refused',
      reason: 'stale',
      messageId: 'b-old',
    });
    expect(await receive.receive(await broadcast({ signedAt: ahead }))).toMatchObject({ reason: 'stale' });
    expect(changes).toEqual([]);
    expect(warn).toMatchObject([
      { msg: 'broadcast refused', reason: 'stale' },
      { msg: 'broadcast refused', reason: 'stale' },
    ]);
  });

  it('rejects a signed broadcast of a kind it does not know, and does not record it', async () => {
    const { receive, changes } = receiver();
    expect(await receive.receive(await broadcast({}, { kind: 'reboot' }))).toMatchObject({
      reason: 'unknown-kind',
    });
    expect(changes).toEqual([]);
  });

  it('does not record a message whose action failed, so its redelivery is acted on', async () => {
    let fail = true;
    const { receive, warn } = receiver({
      listener: {
        notify: async () => {
          if (fail) throw new Error('disk full');
        },
      },
    });
    const envelope = await broadcast();
    expect(await receive.receive(envelope)).toEqual({
      status: 'failed',
      messageId: 'b-1',
      detail: 'disk full',
    });
    expect(warn).toMatchObject([{ msg: 'broadcast not acted on', detail: 'disk full' }]);
    fail = false;
    expect((await receive.receive(envelope)).status).toBe('acted');
  });
});

describe('BroadcastLedger', () => {
  it('keeps the last N ids across restarts, and treats a torn or foreign file as empty', async () => {
    const ledger = new BroadcastLedger({ stateDir, hostId: 'h1', keep: 2 });
    for (const id of ['a', 'b', 'c']) await ledger.record(id);
    const reopened = new BroadcastLedger({ stateDir, hostId: 'h1', keep: 2 });
    expect([await reopened.has('a'), await reopened.has('b'), await reopened.has('c')]).toEqual([
      false,
      true,
      true,
    ]);
    expect(await new BroadcastLedger({ stateDir, hostId: 'h2' }).has('b')).toBe(false);

    await writeFile(join(stateDir, 'broadcasts-h1.json'), '{"hostId":"h1","ids":["b"', 'utf8');
    expect(await new BroadcastLedger({ stateDir, hostId: 'h1' }).has('b')).toBe(false);
  });
});

describe('StateInbox with broadcasts', () => {
  const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
  const sqs = new SQSClient({ region: 'us-east-1', credentials });
  const s3 = new S3Client({ region: 'us-east-1', credentials });
  const sqsMock = mockClient(sqs);
  beforeEach(() => {
    sqsMock.reset();
    sqsMock.on(DeleteMessageBatchCommand).resolves({ Successful: [], Failed: [] });
  });

  const desired: DesiredHostState = {
    hostId: 'h1',
    group: 'edge',
    hostType: 'media',
    stateVersion: 4,
    services: { media: { version: '1.0.0' } },
    config: {},
    mode: 'running',
  };
  let nextId = 0;
  const message = (body: unknown): Message => {
    nextId += 1;
    return { MessageId: `m${nextId}`, ReceiptHandle: `rh-${nextId}`, Body: JSON.stringify(body) };
  };
  const deleted = () =>
    sqsMock
      .commandCalls(DeleteMessageBatchCommand)
      .flatMap((call) => (call.args[0].input.Entries ?? []).map((entry) => String(entry.ReceiptHandle)));

  function inbox(notify: (c: DependencyChange) => Promise<void>, withReceiver = true) {
    const order: string[] = [];
    const quiet = { info: () => {}, warn: () => {} };
    const box = new StateInbox({
      hostId: 'h1',
      sqs,
      s3,
      queue: { url: 'http://127.0.0.1:4566/000000000000/fleetfold-inbox-h1' },
      publicKey: signer.publicKeyPem,
      applied: new AppliedStateStore({ stateDir, hostId: 'h1' }),
      apply: async (state) => void order.push(`apply ${state.stateVersion}`),
      logger: quiet,
      ...(withReceiver
        ? {
            broadcasts: new BroadcastReceiver({
              ...HOST,
              publicKey: signer.publicKeyPem,
              ledger: new BroadcastLedger({ stateDir, hostId: 'h1' }),
              listener: {
                notify: async (c) => {
                  order.push(`notify ${c.service}`);
                  await notify(c);
                },
              },
              clock: () => NOW,
              logger: quiet,
            }),
          }
        : {}),
    });
    return { box, order };
  }

  it("acts on a broadcast after the batch's state, deleting both, and deletes a repeat unacted", async () => {
    const { box, order } = inbox(async () => {});
    const notice = message(await broadcast());
    const state = message(await signEnvelope(signer, { state: desired }, NOW));
    const outcome = await box.handle([notice, state]);
    expect(outcome).toMatchObject({
      applied: 4,
      ignored: [],
      kept: [],
      broadcasts: [{ messageId: notice.MessageId, receipt: { status: 'acted', messageId: 'b-1' } }],
    });
    expect(order).toEqual(['apply 4', 'notify db']);
    expect(deleted().sort()).toEqual([notice.ReceiptHandle, state.ReceiptHandle].sort());

    const repeat = message(await broadcast());
    const again = await box.handle([repeat]);
    expect(again.broadcasts).toMatchObject([{ receipt: { status: 'refused', reason: 'replayed' } }]);
    expect(order).toEqual(['apply 4', 'notify db']);
    expect(deleted()).toContain(repeat.ReceiptHandle);
  });

  it('keeps a broadcast whose action failed on the queue, and deletes refused ones', async () => {
    const { box } = inbox(async () => {
      throw new Error('config not written');
    });
    const failing = message(await broadcast());
    const foreign = message(await broadcast({ role: 'db', messageId: 'b-2' }));
    const outcome = await box.handle([failing, foreign]);
    expect(outcome.broadcasts?.map(({ receipt }) => receipt.status)).toEqual(['failed', 'refused']);
    expect(deleted()).toEqual([foreign.ReceiptHandle]);
  });

  it('without a receiver, deletes a broadcast as not a state, as before', async () => {
    const { box, order } = inbox(async () => {}, false);
    const outcome = await box.handle([message(await broadcast())]);
    expect(outcome.ignored).toMatchObject([{ reason: 'malformed' }]);
    expect(outcome.broadcasts).toBeUndefined();
    expect(order).toEqual([]);
  });
});

describe('appliers on a dependency change', () => {
  const dependencyChange: DependencyChange = {
    service: 'db',
    reason: 'db 1.0.0 → 2.0.0',
    hostIds: ['h1'],
    messageId: 'b-1',
  };
  const state = (upstreams: Record<string, string[]>): DesiredHostState => ({
    hostId: 'h1',
    group: 'edge',
    hostType: 'router',
    stateVersion: 3,
    services: { lb: { version: '1.0.0' } },
    config: {},
    mode: 'running',
    upstreams,
  });

  it('Ec2Applier runs the hook with the dependency and reason, logging its output', async () => {
    const { logger, info } = recordingLogger();
    const applier = new Ec2Applier({
      hostId: 'h1',
      stateDir,
      runtime: new HostRuntime(),
      command: `[ "$FLEETFOLD_ACTION" = notify ] || exit 0; echo "$FLEETFOLD_SERVICE|$FLEETFOLD_NOTIFY_REASON|$FLEETFOLD_STATE_VERSION|$(basename "$FLEETFOLD_CONFIG_FILE")"`,
      logger,
    });
    await applier.apply(state({ db: ['10.0.0.5:5432'] }));
    info.length = 0;
    await applier.notify(dependencyChange);
    expect(info).toEqual([
      {
        hostId: 'h1',
        msg: 'notify hook ran',
        service: 'db',
        reason: 'db 1.0.0 → 2.0.0',
        code: 0,
        output: 'db|db 1.0.0 → 2.0.0|3|config.json',
      },
    ]);
  });

  it('Ec2Applier logs a failing hook as a warning, and is fine without a hook command', async () => {
    const failing = recordingLogger();
    const withHook = new Ec2Applier({
      hostId: 'h1',
      stateDir,
      runtime: new HostRuntime(),
      command: 'echo nope; exit 4',
      logger: failing.logger,
    });
    await withHook.notify(dependencyChange);
    expect(failing.warn).toMatchObject([{ msg: 'notify hook failed', code: 4, output: 'nope' }]);

    const none = recordingLogger();
    const withoutHook = new Ec2Applier({
      hostId: 'h1',
      stateDir,
      runtime: new HostRuntime(),
      logger: none.logger,
    });
    await withoutHook.apply(state({}));
    await expect(withoutHook.notify(dependencyChange)).resolves.toBeUndefined();
    expect(none.warn).toEqual([]);
  });

  it("LocalApplier reads its state's endpoints again: config file rewritten, balancer still on its upstreams", async () => {
    const upstream = await member('db');
    const runtime = new HostRuntime();
    const applier = new LocalApplier({
      hostId: 'h1',
      stateDir,
      runtime,
      startService: () => Promise.reject(new Error('no services in this test')),
      logger: { info: () => {}, warn: () => {} },
    });
    cleanups.push(() => applier.stop());
    await applier.notify(dependencyChange);
    await applier.apply(state({ api: [upstream] }));
    await rm(join(stateDir, 'config.json'));

    await applier.notify(dependencyChange);

    const file = JSON.parse(await readFile(join(stateDir, 'config.json'), 'utf8'));
    expect(file).toMatchObject({ stateVersion: 3, upstreams: { api: [upstream] } });
    const port = runtime.service('lb')?.port;
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('db');
  });
});

async function member(name: string): Promise<string> {
  const server: Server = createServer((_request, response) => response.end(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}
