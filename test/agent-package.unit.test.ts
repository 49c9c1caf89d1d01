import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TarEntry, tar, tarGz } from '../agent/package/tar.ts';
import {
  AGENT_ENV_FILE,
  AGENT_INSTALL_DIR,
  AGENT_NODE_MAJOR,
  AGENT_UNIT,
} from '../shared/groups/user-data.ts';

const PACKAGE = resolve(import.meta.dirname, '..', 'agent', 'package');
const read = (name: string) => readFileSync(join(PACKAGE, name), 'utf8');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleetfold-package-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('tar writer', () => {
  const segment = fc
    .stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,11}$/)
    .filter((name) => !name.includes('..'));
  const files = fc.uniqueArray(
    fc.record({
      path: fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/')),
      mode: fc.constantFrom(0o644, 0o755, 0o600),
      content: fc.uint8Array({ maxLength: 1_500 }).map((bytes) => Buffer.from(bytes)),
    }),
    { selector: (file) => file.path, maxLength: 6 },
  );

  it('writes archives that GNU tar extracts to the same names, bytes and modes', () => {
    let run = 0;
    fc.assert(
      fc.property(files, (chosen) => {
        // A file may not also be another file's folder; tar would refuse, as any file system would.
        const paths = chosen.map((file) => file.path);
        fc.pre(!paths.some((path) => paths.some((other) => other.startsWith(`${path}/`))));
        const folders = [...new Set(paths.flatMap((path) => ancestors(path)))].sort();
        const entries: TarEntry[] = [
          ...folders.map((folder) => ({ path: `${folder}/`, mode: 0o755 })),
          ...chosen.map((file) => ({ path: file.path, mode: file.mode, content: file.content })),
        ];
        const out = join(dir, `x${run++}`);
        mkdirSync(out);
        writeFileSync(`${out}.tar.gz`, tarGz(entries));
        execFileSync('tar', ['-xzf', `${out}.tar.gz`, '-C', out, '--no-same-owner']);
        for (const file of chosen) {
          expect(readFileSync(join(out, file.path)).equals(file.content)).toBe(true);
          expect(statSync(join(out, file.path)).mode & 0o777).toBe(file.mode & ~process.umask());
        }
      }),
      { numRuns: 25 },
    );
  });

  it('depends on nothing but its entries, so the same entries give the same bytes', () => {
    const entries: TarEntry[] = [{ path: 'a', mode: 0o644, content: Buffer.from('x') }];
    expect(tarGz(entries).equals(tarGz(entries))).toBe(true);
    // Header, one content block, two end blocks.
    expect(tar(entries)).toHaveLength(4 * 512);
  });

  it('refuses paths that could land outside the folder it is unpacked in, or that ustar cannot hold', () => {
    const entry = (path: string): TarEntry => ({ path, mode: 0o644, content: Buffer.alloc(0) });
    for (const path of ['../etc/passwd', '/etc/passwd', 'a/../../b', 'a b', `${'x'.repeat(101)}`]) {
      expect(() => tar([entry(path)]), path).toThrow(/tar entry path/);
    }
    expect(() => tar([{ path: 'bin/', mode: 0o755, content: Buffer.from('x') }])).toThrow(/directory/);
  });
});

describe('the files the artifact carries', () => {
  it('has a unit that reads the env file the boot script writes and runs the installed wrapper', () => {
    const unit = read(AGENT_UNIT);
    expect(unit).toContain(`\nEnvironmentFile=${AGENT_ENV_FILE}\n`);
    expect(unit).toContain(`\nExecStart=${AGENT_INSTALL_DIR}/bin/fleetfold-agent\n`);
    expect(unit).toContain('\nRestart=always\n');
    expect(unit).toContain('\nWantedBy=multi-user.target\n');
  });

  it.skipIf(spawnSync('systemd-analyze', ['--version']).status !== 0)(
    'has a unit systemd calls better sandboxed than a plain root service',
    () => {
      const file = join(dir, AGENT_UNIT);
      writeFileSync(file, read(AGENT_UNIT));
      const plain = join(dir, 'plain.service');
      writeFileSync(plain, '[Service]\nExecStart=/bin/true\n');
      const exposure = (unit: string) => {
        const { stdout } = spawnSync('systemd-analyze', ['security', '--offline=yes', unit], {
          encoding: 'utf8',
        });
        return Number(/Overall exposure level for \S+: ([\d.]+)/.exec(stdout)?.[1]);
      };
      expect(exposure(plain)).toBeGreaterThan(9);
      expect(exposure(file)).toBeLessThan(7);
    },
  );

  it('has scripts that parse, and insist on the Node major the bundle targets', () => {
    expect(spawnSync('bash', ['-n', join(PACKAGE, 'install.sh')]).status).toBe(0);
    expect(spawnSync('sh', ['-n', join(PACKAGE, 'fleetfold-agent.sh')]).status).toBe(0);
    expect(read('install.sh')).toContain(`>= ${AGENT_NODE_MAJOR} ? 0 : 1`);
    expect(read('install.sh')).toContain(`the agent needs >= ${AGENT_NODE_MAJOR}`);
  });
});

function ancestors(path: string): string[] {
  const parts = path.split('/').slice(0, -1);
  return parts.map((_, index) => parts.slice(0, index + 1).join('/'));
}
