import { deserializeEvent, type FalcoEvent } from './falco-event.ts';

const UUID_AT_START = /^\{"uuid":"([^"\\]*)"/;
const TIME_VALUE = /^[0-9T:.+\-Z]+$/;

/**
 * One queued event: the JSON written at ingest (the webhook body, no newline) and, parsed only
 * when an adapter asks for fields, the event itself. `uuid` and `time` are read from the text
 * without a parse (a 10,000-event CloudWatch batch would otherwise spend most of its time in the
 * lossless parser): serializeEvent writes `uuid` first and the top-level `time` before
 * output_fields, and inside a JSON string a `"` is always escaped, so the first `","time":"` is the
 * top-level key. Anything unexpected takes the full parse.
 */
export class StoredEvent {
  #event?: FalcoEvent;
  constructor(readonly json: string) {}

  get event(): FalcoEvent {
    this.#event ??= deserializeEvent(this.json);
    return this.#event;
  }

  get uuid(): string {
    return UUID_AT_START.exec(this.json)?.[1] ?? this.event.uuid;
  }

  get time(): string {
    const at = this.json.indexOf('","time":"');
    if (at > 0) {
      const start = at + 10;
      const end = this.json.indexOf('"', start);
      const time = this.json.slice(start, end);
      if (end > start && end - start <= 40 && TIME_VALUE.test(time)) return time;
    }
    return this.event.time;
  }
}
