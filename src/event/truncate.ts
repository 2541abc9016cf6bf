/**
 * Shortening text to a size in bytes, at a character boundary: ingest's falcosidekick field cut,
 * and outputs with size limits (CloudWatch Logs refuses an event over 256 KiB and SNS a message
 * over 256 KiB). Rather than fail (and dead-letter) the alert, it is shortened with a visible marker. An event's
 * JSON stays valid JSON with the same keys, so metric filters such as `$.priority = "Error"`
 * still match it: the longest strings (`output`, output field values) are cut first.
 */
import type { StoredEvent } from './stored-event.ts';
import { serializeEvent, type FalcoEvent } from './falco-event.ts';
import { setOwn } from './json.ts';

export const MARKER = '…[truncated]';

/** The longest prefix of s within maxBytes UTF-8 bytes, cut at a character boundary. */
export function cutUtf8(s: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  const buf = Buffer.from(s, 'utf8');
  let end = maxBytes;
  // Step back over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** s if it fits in maxBytes, else a prefix ending with a marker that gives the original size. */
export function truncateText(s: string, maxBytes: number): string {
  const size = Buffer.byteLength(s, 'utf8');
  if (size <= maxBytes) return s;
  const marker = `…[truncated by falco-router: ${size} bytes]`;
  return cutUtf8(s, maxBytes - Buffer.byteLength(marker, 'utf8')) + marker;
}

/**
 * The event JSON within maxBytes. When it is too large, the longest strings are shortened, each
 * ending with MARKER, and the JSON is written again; if that cannot work (thousands of small
 * fields), the text itself is cut with a marker (no longer valid JSON, but still delivered).
 */
export function fitEventJson(item: StoredEvent, maxBytes: number): { json: string; truncated: boolean } {
  const size = Buffer.byteLength(item.json, 'utf8');
  if (size <= maxBytes) return { json: item.json, truncated: false };
  const ev: FalcoEvent = { ...item.event, output_fields: { ...item.event.output_fields } };
  let json = item.json;
  let over = size - maxBytes;
  for (let round = 0; round < 32 && over > 0; round++) {
    const slot = longestString(ev);
    if (!slot) break;
    const current = slot.get();
    const bytes = Buffer.byteLength(current, 'utf8');
    // JSON escaping makes a string longer in the document than in memory; cutting the excess
    // plus a margin converges in a round or two.
    const keep = Math.max(0, bytes - over - Buffer.byteLength(MARKER, 'utf8') - 64);
    if (keep >= bytes) break;
    slot.set(cutUtf8(current, keep) + MARKER);
    json = serializeEvent(ev);
    over = Buffer.byteLength(json, 'utf8') - maxBytes;
  }
  if (over > 0) json = truncateText(json, maxBytes);
  return { json, truncated: true };
}

interface Slot {
  get(): string;
  set(v: string): void;
}

function longestString(ev: FalcoEvent): Slot | undefined {
  let best: Slot | undefined;
  let bestLen = Buffer.byteLength(MARKER, 'utf8') + 64;
  const consider = (len: number, slot: Slot) => {
    if (len > bestLen) {
      bestLen = len;
      best = slot;
    }
  };
  consider(Buffer.byteLength(ev.output, 'utf8'), { get: () => ev.output, set: (v) => (ev.output = v) });
  for (const [k, v] of Object.entries(ev.output_fields)) {
    if (typeof v === 'string') consider(Buffer.byteLength(v, 'utf8'), { get: () => ev.output_fields[k] as string, set: (x) => setOwn(ev.output_fields, k, x) });
  }
  return best;
}
