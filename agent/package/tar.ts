import { gzipSync } from 'node:zlib';

/**
 * A minimal ustar writer, so the agent artifact is byte-for-byte the same for the same inputs on any machine
 * (no GNU tar flags, no file mtimes or owners): CDK hashes it into the asset, and an unchanged agent then
 * means no upload and no diff on `cdk deploy`.
 */

export interface TarEntry {
  /** Relative path with `/` separators; a directory ends in `/`. */
  path: string;
  /** Permission bits, e.g. 0o755. */
  mode: number;
  /** Absent for a directory. */
  content?: Buffer;
}

const BLOCK = 512;

export function tarGz(entries: readonly TarEntry[]): Buffer {
  return gzipSync(tar(entries), { level: 9 });
}

export function tar(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const directory = entry.path.endsWith('/');
    if (directory !== (entry.content === undefined)) {
      throw new Error(`tar entry ${entry.path}: a directory ends in "/" and has no content, a file has both`);
    }
    const content = entry.content ?? Buffer.alloc(0);
    blocks.push(header(entry.path, entry.mode, content.length, directory ? '5' : '0'));
    blocks.push(content, Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK));
  }
  // The end of the archive: two zero blocks.
  blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}

function header(path: string, mode: number, size: number, type: '0' | '5'): Buffer {
  if (!/^[A-Za-z0-9._-][A-Za-z0-9._/-]*$/.test(path) || path.includes('..') || path.startsWith('/')) {
    throw new Error(`tar entry path "${path}" must be relative, without "..", in [A-Za-z0-9._/-]`);
  }
  if (Buffer.byteLength(path) > 100) throw new Error(`tar entry path "${path}" is longer than 100 bytes`);
  const block = Buffer.alloc(BLOCK);
  block.write(path, 0, 100, 'utf8');
  octal(block, 100, 8, mode & 0o7777);
  octal(block, 108, 8, 0); // uid
  octal(block, 116, 8, 0); // gid
  octal(block, 124, 12, size);
  octal(block, 136, 12, 0); // mtime: the epoch, so the bytes depend on the content only
  block.fill(' ', 148, 156); // the checksum counts its own field as spaces
  block.write(type, 156, 1, 'ascii');
  block.write('ustar\0', 257, 6, 'ascii');
  block.write('00', 263, 2, 'ascii');
  block.write('root', 265, 32, 'ascii');
  block.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

/** A zero-padded octal number ending in NUL, filling the field. */
function octal(block: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error(`tar header value ${value} does not fit ${length} bytes`);
  block.write(`${digits.padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}
