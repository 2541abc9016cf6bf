/**
 * NDJSON, one alert per line (the webhook body). Each batch is one write() on an append-mode
 * descriptor, so a crash keeps every completed write (with fsync, a machine crash too). Rotation
 * renames path → path.1 …
 */
import { z } from 'zod';
import { constants } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutputError, byteSize, int, bool, type OutputType, type Output, type StoredEvent } from '../sdk/index.ts';

const schema = z.object({
  path: z.string({ message: 'is required' }).min(1, { message: 'must not be empty' }).describe('The file alerts are appended to; its directory is created.'),
  maxsize: byteSize.prefault('100MiB').describe('Rotate when a write would take the file past this size; 0 never rotates.'),
  maxfiles: int(0, 1000).default(5).describe('Rotated files kept (path.1 … path.N); 0 keeps none.'),
  fsync: bool.default(false).describe('fsync after each write, so a machine crash loses nothing written.'),
});
type FileConfig = z.infer<typeof schema>;

/** errno codes that retrying cannot fix. */
const PERMANENT = new Set(['EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'EEXIST', 'EROFS']);

class FileOutput implements Output {
  #fh?: FileHandle;
  #size = 0;

  constructor(private readonly config: FileConfig) {}

  async send(batch: readonly StoredEvent[]): Promise<void> {
    const data = Buffer.from(batch.map((e) => e.json + '\n').join(''));
    try {
      if (!this.#fh) await this.#open();
      if (this.config.maxsize > 0 && this.#size > 0 && this.#size + data.length > this.config.maxsize) await this.#rotate();
      await this.#append(data);
      if (this.config.fsync) await this.#fh!.sync();
    } catch (err) {
      await this.close().catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      const permanent = code !== undefined && PERMANENT.has(code);
      throw new OutputError(`cannot write ${this.config.path}: ${(err as Error).message}`, {
        reason: permanent ? 'clientError' : 'other',
        retryable: !permanent,
        status: code,
      });
    }
  }

  /**
   * write() may write only part of the buffer (a full disk): the rest is written from where it
   * stopped, and if that fails the file is cut back to where this batch began, so no alert is left
   * as half a line with the next one glued to it.
   */
  async #append(data: Buffer): Promise<void> {
    const fh = this.#fh!;
    const start = this.#size;
    try {
      for (let off = 0; off < data.length; ) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        if (bytesWritten === 0) throw Object.assign(new Error('no byte written'), { code: 'EIO' });
        off += bytesWritten;
      }
      this.#size += data.length;
    } catch (err) {
      await fh.truncate(start).catch(() => {});
      throw err;
    }
  }

  /**
   * Opens for appending, non-blocking: a FIFO without a reader fails at once (ENXIO) and a full
   * one answers EAGAIN, instead of a write that blocks a thread for ever and keeps the process
   * from exiting. A last line left incomplete (a crash mid-write, a failed cut) is removed first.
   */
  async #open(): Promise<void> {
    await mkdir(dirname(this.config.path), { recursive: true });
    const existing = await stat(this.config.path).catch(() => undefined);
    if (existing?.isFile()) {
      const fh = await open(this.config.path, 'r+');
      try {
        const complete = await lastLineEnd(fh, existing.size);
        if (complete < existing.size) await fh.truncate(complete);
      } finally {
        await fh.close();
      }
    }
    this.#fh = await open(this.config.path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NONBLOCK, 0o644);
    this.#size = (await this.#fh.stat()).size;
  }

  async #rotate(): Promise<void> {
    await this.close();
    const { path, maxfiles } = this.config;
    if (maxfiles === 0) {
      await rm(path, { force: true });
    } else {
      await rm(`${path}.${maxfiles}`, { force: true });
      for (let i = maxfiles - 1; i >= 1; i--) await rename(`${path}.${i}`, `${path}.${i + 1}`).catch(() => {});
      await rename(path, `${path}.1`);
    }
    await this.#open();
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}

/** The size of the file up to and including its last newline (0 when it has none). */
async function lastLineEnd(fh: FileHandle, size: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024);
  for (let end = size; end > 0; ) {
    const from = Math.max(0, end - chunk.length);
    const { bytesRead } = await fh.read(chunk, 0, end - from, from);
    const nl = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (nl >= 0) return from + nl + 1;
    end = from;
  }
  return 0;
}

export const file: OutputType<typeof schema> = {
  type: 'file',
  schema,
  secrets: [],
  // One writer per file keeps lines whole and rotation simple.
  defaults: { maxBatch: 1000, concurrency: 1 },
  create: (config) => new FileOutput(config),
};
