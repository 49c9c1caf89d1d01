import { execFileSync } from 'node:child_process';
import { createHmac, verify as cryptoVerify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { snapshotJsonSchema } from '../functions/api/openapi.ts';
import { canonicalJson } from '../shared/canonical.ts';
import { BROADCAST_WINDOW_MS, broadcastMessage, checkBroadcast } from '../shared/groups/broadcast.ts';
import { judgeSnapshot } from '../shared/ingest.ts';
import { DEFAULT_BANDS } from '../shared/metrics.ts';
import { MachineState, SIGNATURE_PREFIX, Snapshot } from '../shared/schemas.ts';
import { verifySnapshotSignature } from '../shared/signing.ts';
import { checkEnvelope, envelopeMessage, sha256Hex } from '../shared/state-envelope.ts';
import { registeredHost } from './support/fixtures.ts';

const ROOT = join(import.meta.dirname, '..');
const EXAMPLES = join(ROOT, 'events', 'snapshots');
const EXAMPLES_SCRIPTS = join(ROOT, 'docs', 'examples');
const SECRET = readFileSync(join(EXAMPLES, 'secret.txt'), 'utf8').trim();
const exampleFiles = readdirSync(EXAMPLES).filter((file) => file.endsWith('.json'));
const example = (file: string) => Snapshot.parse(JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8')));

describe('docs/snapshot.schema.json', () => {
  it('is what the generator (npm run openapi, GET /schemas/snapshot.json) writes', () => {
    const committed = JSON.parse(readFileSync(join(ROOT, 'docs', 'snapshot.schema.json'), 'utf8'));
    // On a schema change: npm run openapi && cp dist/snapshot.schema.json docs/
    expect(committed).toEqual(JSON.parse(JSON.stringify(snapshotJsonSchema())));
  });
});

describe('the signed examples in events/snapshots/', () => {
  it('are there: a booting host, a running one with services and sessions, a heartbeat', () => {
    expect(exampleFiles).toEqual(
      expect.arrayContaining(['media-1-booting.json', 'media-1-running.json', 'media-1-heartbeat.json']),
    );
  });

  it.each(exampleFiles)('%s is a snapshot whose signature verifies with secret.txt only', (file) => {
    const raw = JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8'));
    const parsed = Snapshot.safeParse(raw);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    const snapshot = parsed.data as Snapshot;
    // Written out in full: the wire form equals the schema's normalised form, so what is MACed is what is sent.
    expect(canonicalJson(raw)).toBe(canonicalJson(snapshot));
    expect(verifySnapshotSignature(SECRET, snapshot)).toBe(true);
    expect(verifySnapshotSignature(`${SECRET}x`, snapshot)).toBe(false);
    expect(verifySnapshotSignature(SECRET, { ...snapshot, seq: snapshot.seq + 1 })).toBe(false);
  });

  it.each(
    exampleFiles.filter((file) => readdirSync(EXAMPLES).includes(file.replace('.json', '.mac-input.txt'))),
  )('%s: its .mac-input.txt is byte for byte what is MACed', (file) => {
    const snapshot = example(file);
    const macInput = readFileSync(join(EXAMPLES, file.replace('.json', '.mac-input.txt')));
    const mac = createHmac('sha256', SECRET).update(macInput).digest('hex');
    expect(`${SIGNATURE_PREFIX}${mac}`).toBe(snapshot.signature);
    const { hostId, seq, signedAt, state } = snapshot;
    expect(macInput.toString('utf8')).toBe(
      `fleetfold-snapshot-v1\n${canonicalJson({ hostId, seq, signedAt, state })}`,
    );
  });

  it('tell the ingest a story: booting and running are changes, the heartbeat is not', () => {
    const config = {
      clockSkewSeconds: 300,
      maxSnapshotBytes: 262_144,
      heartbeatCoalesceSeconds: 0,
      bands: DEFAULT_BANDS,
    };
    let host = registeredHost({ hostId: 'media-1', hostType: 'media', roles: ['media'], role: 'media' });
    const kinds: string[] = [];
    for (const name of ['booting', 'running', 'heartbeat']) {
      const snapshot = example(`media-1-${name}.json`);
      const at = new Date(snapshot.signedAt);
      const verdict = judgeSnapshot({
        snapshot,
        host,
        secret: SECRET,
        receivedAt: at,
        now: at,
        eventId: name,
        config,
      });
      kinds.push(verdict.kind);
      if (verdict.kind === 'changed') host = verdict.next;
    }
    expect(kinds).toEqual(['changed', 'changed', 'heartbeat']);
  });
});

function script(args: string[], env: Record<string, string>, input?: string): string {
  return execFileSync('bash', [join(EXAMPLES_SCRIPTS, 'post-snapshot.sh'), ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    ...(input === undefined ? {} : { input }),
    encoding: 'utf8',
  });
}

describe('post-snapshot.sh signs as shared/signing.ts does', () => {
  it.each(exampleFiles.filter((file) => file.startsWith('media-1-')))(
    'reproduces %s exactly from its state, sequence and time',
    (file) => {
      const snapshot = example(file);
      const stateFile = join(EXAMPLES, file);
      const state = JSON.stringify(snapshot.state);
      const [context, canonical, body] = script(
        ['--print', '-'],
        {
          FLEETFOLD_HOST_ID: snapshot.hostId,
          FLEETFOLD_SECRET: SECRET,
          FLEETFOLD_SEQ: String(snapshot.seq),
          FLEETFOLD_SIGNED_AT: snapshot.signedAt,
        },
        state,
      )
        .trimEnd()
        .split('\n');
      expect(`${context}\n${canonical}`).toBe(
        readFileSync(stateFile.replace('.json', '.mac-input.txt'), 'utf8'),
      );
      expect(JSON.parse(body as string)).toEqual(snapshot);
    },
  );

  it("fills in the schema's defaults before signing, as the verifier sees the state", () => {
    const minimal = {
      status: 'running',
      group: 'demo',
      hostType: 'media',
      roles: ['media'],
      ips: {},
      capacity: { sessions: 1 },
      config: {},
      software: { media: { version: '2.1.0' } },
      operational: {},
    };
    const out = script(
      ['--print', '-'],
      { FLEETFOLD_HOST_ID: 'media-1', FLEETFOLD_SECRET: SECRET, FLEETFOLD_SEQ: '7' },
      JSON.stringify(minimal),
    );
    const body = Snapshot.parse(JSON.parse(out.trimEnd().split('\n')[2] as string));
    expect(body.state).toEqual(MachineState.parse(minimal));
    expect(verifySnapshotSignature(SECRET, body)).toBe(true);
  });
});

/**
 * Runs docs/examples/jcs.jq over documents (values, or JSON text as a host would write it): per document, its
 * `jq -S -c` form when jcs.jq accepts it, else the refusal. Two jq runs over the same input, one document a line.
 */
function jqCanonical(documents: unknown[]): ({ ok: true; text: string } | { ok: false })[] {
  const input = documents
    .map((document) => (typeof document === 'string' ? document : JSON.stringify(document)))
    .join('\n');
  const jq = (args: string[]) => execFileSync('jq', args, { input, encoding: 'utf8' }).trimEnd().split('\n');
  const accepted = jq(['-L', EXAMPLES_SCRIPTS, '-c', 'include "jcs"; jcs_problems | length == 0']);
  const texts = jq(['-S', '-c', '.']);
  return accepted.map((verdict, index) =>
    verdict === 'true' ? { ok: true, text: texts[index] as string } : { ok: false },
  );
}

describe('jq -S -c with jcs.jq is RFC 8785 wherever jcs.jq lets a document through', () => {
  const value = fc.letrec((tie) => ({
    json: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom(null, true, false),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constantFrom(0.1, 0.25, 1e-6, 1e-7, 1e15, 1e16, 1e21, 2 ** 53 - 1, 2 ** 53, -0, 0.000123, 123.456),
      fc.string({ unit: 'binary' }),
      fc.array(tie('json'), { maxLength: 4 }),
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 4 }), tie('json'), { maxKeys: 4 }),
    ),
  })).json;
  // In a `u` regex a surrogate pair is one code point: this matches lone surrogates only.
  const wellFormed = (text: string) => !/[\uD800-\uDFFF]/u.test(text);

  it('agrees byte for byte with canonicalJson on every document it accepts', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.array(fc.dictionary(fc.string({ unit: 'binary' }), value), { minLength: 20, maxLength: 20 }),
        (batch) => {
          // Lone surrogates are not I-JSON; the protocol forbids them and jq cannot see them (it replaces them).
          const documents = batch.filter((document) => wellFormed(JSON.stringify(document)));
          const results = jqCanonical(documents);
          for (const [index, result] of results.entries()) {
            if (!result.ok) {
              refused++;
              continue;
            }
            accepted++;
            expect(result.text).toBe(canonicalJson(JSON.parse(JSON.stringify(documents[index]))));
          }
        },
      ),
      { numRuns: 25 },
    );
    // Not vacuous: both sides of the guard are exercised.
    expect(accepted).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(50);
  });

  it('lets through what hosts send: ASCII keys, short decimals, safe integers', () => {
    const documents = [
      { seq: 2 ** 53 - 1, load: 0.42, nested: { b: [1, 2, { z: 'ü€', a: '\n\t"\\' }], a: null } },
      JSON.parse(readFileSync(join(EXAMPLES, 'media-1-running.json'), 'utf8')),
    ];
    expect(jqCanonical(documents).map((result) => result.ok)).toEqual([true, true]);
  });

  it('refuses the documents where jq and RFC 8785 differ', () => {
    const documents = [
      { n: 1e-7 },
      { n: 1e16 },
      '{"n":-0}',
      { n: 0.30000000000000004 },
      { '\u{1f600}': 1, '\ufb33': 2 },
      { s: '\u007f' },
    ];
    expect(jqCanonical(documents).map((result) => result.ok)).toEqual(Array(6).fill(false));
    // jq 1.6 reads 1.50 as a double and prints 1.5, as JCS does; jq 1.7 would print the literal: refused.
    const [trailingZero] = jqCanonical(['{"n":1.50}']);
    expect(trailingZero?.ok === false || trailingZero?.text === '{"n":1.5}').toBe(true);
  });
});

describe('the inbox examples in docs/examples/inbox/', () => {
  const INBOX = join(EXAMPLES_SCRIPTS, 'inbox');
  const publicKey = readFileSync(join(INBOX, 'control-public.pem'), 'utf8');
  const body = (file: string) => JSON.parse(readFileSync(join(INBOX, file), 'utf8'));
  const message = (file: string) => readFileSync(join(INBOX, file.replace('.json', '.message.txt')));
  const verifyScript = (input: string, env: Record<string, string>) =>
    execFileSync('bash', [join(EXAMPLES_SCRIPTS, 'verify-envelope.sh'), join(INBOX, 'control-public.pem')], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });

  it.each(['state-inline.json', 'state-by-ref.json'])(
    '%s verifies, and .message.txt is what is signed',
    (file) => {
      const envelope = body(file);
      expect(checkEnvelope(envelope, publicKey, 'media-1')).toMatchObject({ ok: true });
      expect(checkEnvelope(envelope, publicKey, 'media-2')).toMatchObject({
        ok: false,
        reason: 'not-for-me',
      });
      const { signature, ...unsigned } = envelope;
      expect(envelopeMessage(unsigned).equals(message(file))).toBe(true);
      expect(cryptoVerify('sha256', message(file), publicKey, Buffer.from(signature, 'base64'))).toBe(true);
    },
  );

  it("the by-reference state's object has the signed sha256", () => {
    const { ref } = body('state-by-ref.json');
    expect(sha256Hex(readFileSync(join(INBOX, ref.key)))).toBe(ref.sha256);
  });

  it('broadcast.json verifies for a call-router of demo within 15 minutes, and .message.txt is what is signed', () => {
    const broadcast = body('broadcast.json');
    const at = new Date(broadcast.signedAt);
    const host = { group: 'demo', roles: ['call-router'] };
    expect(checkBroadcast(broadcast, publicKey, host, at)).toMatchObject({ ok: true });
    expect(checkBroadcast(broadcast, publicKey, { ...host, roles: ['media'] }, at)).toMatchObject({
      reason: 'not-for-me',
    });
    const later = new Date(at.getTime() + BROADCAST_WINDOW_MS + 1000);
    expect(checkBroadcast(broadcast, publicKey, host, later)).toMatchObject({ reason: 'stale' });
    const { signature: _, ...unsigned } = broadcast;
    expect(broadcastMessage(unsigned).equals(message('broadcast.json'))).toBe(true);
  });

  it('verify-envelope.sh (jq and openssl) accepts them and refuses what checkEnvelope refuses', () => {
    const inline = readFileSync(join(INBOX, 'state-inline.json'), 'utf8');
    const me = { FLEETFOLD_HOST_ID: 'media-1' };
    expect(JSON.parse(verifyScript(inline, me))).toEqual(body('state-inline.json').state);
    const byRef = readFileSync(join(INBOX, 'state-by-ref.json'), 'utf8');
    const object = join(INBOX, 'states', 'media-1', '5.json');
    expect(JSON.parse(verifyScript(byRef, { ...me, FLEETFOLD_STATE_OBJECT: object })).stateVersion).toBe(5);

    const tampered = JSON.stringify({ ...body('state-inline.json'), stateVersion: 9 });
    const refusals: [string, Record<string, string>, RegExp][] = [
      [tampered, me, /bad-signature/],
      [inline, { FLEETFOLD_HOST_ID: 'media-2' }, /not-for-me/],
      [byRef, { ...me, FLEETFOLD_STATE_OBJECT: join(INBOX, 'state-inline.json') }, /digest-mismatch/],
      ['[1]', me, /malformed/],
    ];
    for (const [input, env, reason] of refusals) {
      expect(stderrOfRefusal(() => verifyScript(input, env))).toMatch(reason);
    }
    const broadcast = readFileSync(join(INBOX, 'broadcast.json'), 'utf8');
    const now = String(Date.parse(body('broadcast.json').signedAt) / 1000 + 60);
    const callRouter = { FLEETFOLD_HOST_ID: 'cr-1', FLEETFOLD_GROUP: 'demo', FLEETFOLD_NOW: now };
    expect(JSON.parse(verifyScript(broadcast, { ...callRouter, FLEETFOLD_ROLES: 'lb,call-router' }))).toEqual(
      body('broadcast.json'),
    );
    expect(
      stderrOfRefusal(() => verifyScript(broadcast, { ...callRouter, FLEETFOLD_ROLES: 'media' })),
    ).toMatch(/not-for-me/);
    const late = { ...callRouter, FLEETFOLD_ROLES: 'call-router', FLEETFOLD_NOW: String(Number(now) + 900) };
    expect(stderrOfRefusal(() => verifyScript(broadcast, late))).toMatch(/stale/);
  });
});

/** The stderr of a script run that must fail. */
function stderrOfRefusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return String((error as { stderr?: string }).stderr);
  }
  throw new Error('the script accepted what it must refuse');
}
