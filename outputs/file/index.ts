/**
 * NDJSON, one alert per line (the webhook body). Each batch is one write() on an append-mode
 * descriptor, so a crash keeps every completed write (with fsync, a machine crash too). Rotation
 * renames path → path.1 …
 */
import { z } from 'zod';
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
      await this.#fh!.write(data);
      this.#size += data.length;
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

  async #open(): Promise<void> {
    await mkdir(dirname(this.config.path), { recursive: true });
    this.#fh = await open(this.config.path, 'a');
    this.#size = (await stat(this.config.path)).size;
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

export const file: OutputType<typeof schema> = {
  type: 'file',
  schema,
  secrets: [],
  // One writer per file keeps lines whole and rotation simple.
  defaults: { maxBatch: 1000, concurrency: 1 },
  create: (config) => new FileOutput(config),
};
