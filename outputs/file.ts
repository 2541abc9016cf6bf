import { z } from 'zod';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { OutputType, Output, StoredEvent } from './types.ts';
import { OutputError } from '../src/delivery/output-error.ts';
import { byteSize, int, bool } from '../src/config/fields.ts';

const schema = z.object({
  path: z.string({ message: 'is required' }).min(1, { message: 'must not be empty' }),
  maxsize: byteSize.default(100 * 1024 * 1024),
  maxfiles: int(0, 1000).default(5),
  fsync: bool.default(false),
});
type FileConfig = z.infer<typeof schema>;

/**
 * NDJSON, one event per line. Each batch is one write() on an append-mode descriptor, so a crash
 * keeps every completed write (with fsync, a machine crash too). Rotation renames path → path.1 …
 */
class FileOutput implements Output {
  #fh?: FileHandle;
  #size = 0;

  constructor(
    readonly name: string,
    private readonly config: FileConfig,
  ) {}

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
      const permanent = code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST' || code === 'EROFS';
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

export const file: OutputType<FileConfig> = {
  type: 'file',
  schema,
  secrets: [],
  // One writer per file keeps lines whole and rotation simple.
  defaults: { maxBatch: 1000, concurrency: 1 },
  create(name, config) {
    return new FileOutput(name, config);
  },
};
