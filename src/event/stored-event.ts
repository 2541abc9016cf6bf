import { deserializeEvent, type FalcoEvent } from './falco-event.ts';

/**
 * One queued event: the JSON written at ingest (the webhook body, no newline) and, parsed only
 * when an adapter asks for fields, the event itself.
 */
export class StoredEvent {
  #event?: FalcoEvent;
  constructor(readonly json: string) {}

  get event(): FalcoEvent {
    this.#event ??= deserializeEvent(this.json);
    return this.#event;
  }
}
