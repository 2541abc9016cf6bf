/**
 * Silences in Redis, shared by every router on the same prefix:
 *   <prefix>:silences               hash, id → the silence as JSON
 *   <prefix>:silences:version       counter, incremented with every change of the hash
 *   <prefix>:silences:counts:<id>   hash, output → alerts the silence kept from it
 *
 * Writes go straight to Redis (and to this process's cache at once). Every replica reads the
 * version every 500 ms and the hash only when the version moved, so a silence made on one replica
 * takes effect on the others within about half a second, at the cost of one GET per replica per
 * half second while nothing changes (pub/sub would need a connection of its own per replica and
 * still a poll to recover missed messages). The API reads Redis, so every replica shows the same.
 */
import type { Redis } from 'ioredis';
import { SilenceStore, decodeSilence, expired, newSilence, sortViews, type Silence, type SilenceRequest, type SilenceStoreOptions, type SilenceView } from './silences.ts';

export const POLL_MS = 500;
const PURGE_EVERY_MS = 60_000;

export class RedisSilenceStore extends SilenceStore {
  readonly kind = 'redis' as const;
  readonly #conn: Redis;
  readonly #key: string;
  readonly #versionKey: string;
  readonly #countsPrefix: string;
  /** The version the cache was read at; undefined before the first read. */
  #version: string | null | undefined;
  #poller: NodeJS.Timeout | undefined;
  #polling = false;
  #purgedAt = 0;
  /** Writes made by this process; a read that overlaps one is not applied (it may predate it). */
  #writes = 0;

  /** `conn`: a connection whose commands fail fast while Redis is away (the queue's ingest connection). */
  constructor(conn: Redis, prefix: string, o: SilenceStoreOptions) {
    super(o);
    this.#conn = conn;
    this.#key = `${prefix}:silences`;
    this.#versionKey = `${prefix}:silences:version`;
    this.#countsPrefix = `${prefix}:silences:counts:`;
  }

  protected async load(): Promise<void> {
    await this.#refresh(true);
    if (this.readOnly) return;
    this.#poller = setInterval(() => void this.#poll(), POLL_MS).unref();
  }

  override async close(): Promise<void> {
    clearInterval(this.#poller);
    await super.close();
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      await this.#refresh(false);
    } catch (err) {
      // The cache stays as it is: silences keep applying, and those that end still end on time.
      this.repeats.log('warn', { err: (err as Error).message }, `could not read the silences from Redis: ${(err as Error).message}`);
    } finally {
      this.#polling = false;
    }
  }

  async #refresh(force: boolean): Promise<void> {
    if (!force && (await this.#conn.get(this.#versionKey)) === this.#version) return;
    const writes = this.#writes;
    const [version, hash] = await this.#read();
    // Applying a read sent before this process's own write would drop that write from the cache
    // until the next poll; the version has moved, so the next poll reads again anyway.
    if (writes !== this.#writes) return;
    this.#version = version;
    this.use(this.#decode(hash));
  }

  /** The version and the hash as of one moment. */
  async #read(): Promise<[string | null, Record<string, string>]> {
    const res = await this.#conn.multi().get(this.#versionKey).hgetall(this.#key).exec();
    if (!res) throw new Error('the read of the silences was aborted');
    for (const [err] of res) if (err) throw err;
    return [res[0][1] as string | null, res[1][1] as Record<string, string>];
  }

  #decode(hash: Record<string, string>): Silence[] {
    const out: Silence[] = [];
    for (const [id, json] of Object.entries(hash)) {
      try {
        out.push(decodeSilence(JSON.parse(json)));
      } catch (err) {
        this.repeats.log('warn', { silence: id }, `silence ${id} in Redis (${this.#key}) skipped: ${(err as Error).message}`);
      }
    }
    return out;
  }

  async #counts(ids: readonly string[]): Promise<Array<Record<string, number>>> {
    const raw = await Promise.all(ids.map((id) => this.#conn.hgetall(this.#countsPrefix + id)));
    return raw.map((h) => Object.fromEntries(Object.entries(h).map(([o, n]) => [o, Number(n)])));
  }

  async list(): Promise<SilenceView[]> {
    const silences = this.#decode(await this.#conn.hgetall(this.#key));
    const counts = await this.#counts(silences.map((s) => s.id));
    const now = this.now();
    return sortViews(silences.map((s, i) => this.view(s, counts[i], now)));
  }

  async get(id: string): Promise<SilenceView | undefined> {
    const s = await this.#one(id);
    return s && this.view(s, (await this.#counts([id]))[0]);
  }

  async #one(id: string): Promise<Silence | undefined> {
    const json = await this.#conn.hget(this.#key, id);
    if (json === null) return undefined;
    try {
      return decodeSilence(JSON.parse(json));
    } catch (err) {
      throw new Error(`silence ${id} in Redis (${this.#key}) cannot be read: ${(err as Error).message}`);
    }
  }

  async create(req: SilenceRequest, client?: string): Promise<SilenceView> {
    // Against the cache (at most half a second old): replicas creating at the same moment can pass
    // the bound together by a few, which is all it is there for.
    this.checkRoom();
    const s = newSilence(req, this.now());
    await this.#write(s, this.overflow().map((x) => x.id));
    this.audit('created', s, client);
    return this.view(s, {});
  }

  async expire(id: string, client?: string): Promise<SilenceView | undefined> {
    const s = await this.#one(id);
    if (!s) return undefined;
    const ended = expired(s, this.now());
    if (ended) {
      await this.#write(ended);
      this.audit('expired', ended, client);
    }
    return this.view(ended ?? s, (await this.#counts([id]))[0]);
  }

  /** Writes a silence, and removes `purged` (expired ones over the bound) in the same transaction. */
  async #write(s: Silence, purged: readonly string[] = []): Promise<void> {
    this.#writes++;
    const m = this.#conn.multi();
    if (purged.length > 0) m.hdel(this.#key, ...purged).del(...purged.map((id) => this.#countsPrefix + id));
    const res = await m.hset(this.#key, s.id, JSON.stringify(s)).incr(this.#versionKey).exec();
    if (!res) throw new Error('the write of the silence was aborted');
    for (const [err] of res) if (err) throw err;
    // This process applies it now; the others at their next poll.
    const gone = new Set([s.id, ...purged]);
    this.use([...this.all.filter((x) => !gone.has(x.id)), s]);
  }

  /**
   * One transaction a second for all counts: either all of them are added or none is (and they are
   * tried again). Each counts hash expires when its silence is purged.
   */
  protected async writeCounts(batch: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<void> {
    const ends = new Map(this.all.map((s) => [s.id, Date.parse(s.endsAt)]));
    const m = this.#conn.multi();
    for (const [id, perOutput] of batch) {
      const end = ends.get(id);
      if (end === undefined) continue;
      for (const [o, n] of perOutput) m.hincrby(this.#countsPrefix + id, o, n);
      m.pexpireat(this.#countsPrefix + id, end + this.retentionMs);
    }
    const res = await m.exec();
    if (!res) throw new Error('the write of the counts was aborted');
    for (const [err] of res) if (err) throw err;
  }

  /** Any replica removes silences past their retention; two doing it at once remove them once. */
  protected async housekeeping(now: number): Promise<void> {
    if (now - this.#purgedAt < PURGE_EVERY_MS) return;
    this.#purgedAt = now;
    const old = this.all.filter((s) => Date.parse(s.endsAt) + this.retentionMs <= now).map((s) => s.id);
    if (old.length === 0) return;
    const res = await this.#conn
      .multi()
      .hdel(this.#key, ...old)
      .del(...old.map((id) => this.#countsPrefix + id))
      .incr(this.#versionKey)
      .exec();
    for (const [err] of res ?? []) if (err) throw err;
    await this.#refresh(true);
  }
}
