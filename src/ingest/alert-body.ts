/**
 * One alert body read as ingest reads it: the checks before the JSON (empty, Falco's plain-text
 * output), then parse, enrich and validate. `route-test` uses the same function, so a body it
 * refuses is refused with the same words.
 */
import { parseAndEnrich, type EnrichSettings, type Warn } from '../event/enrich.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { BadEventError } from '../errors.ts';

/** The start of every 400 answer about a body. */
export const BAD_BODY = 'Please send a valid request body';

/** The text of the 400 answer for a body refused with `err`. */
export function badBodyText(err: BadEventError): string {
  return `${BAD_BODY}: ${err.message}\n`;
}

const PLAIN_FALCO_LINE = /^(\d{2}:\d{2}:\d{2}\.\d+|\d{4}-\d{2}-\d{2}T[\d:.]+[+-]?\d*Z?): [A-Za-z]+ /;
// A Falco timestamp and priority fit well within this. The pattern backtracks quadratically on a
// long run of digits (`[\d:.]+` then `\d*`): on a whole 1 MiB body that was minutes of blocked
// event loop (40,000 digits took 0.8 s), so it only ever sees the start of the body.
const PLAIN_PREFIX = 80;

/** Throws BadEventError (with its reason) for a body that is not an alert. */
export async function readAlertBody(body: string | undefined, contentType: string, enrich: EnrichSettings, warn: Warn): Promise<{ event: FalcoEvent; json: string }> {
  if (body === undefined || body.trim() === '') throw new BadEventError('the body is empty', 'emptyBody');
  if (body.trimStart()[0] !== '{' && (PLAIN_FALCO_LINE.test(body.slice(0, PLAIN_PREFIX)) || contentType.startsWith('text/plain'))) {
    throw new BadEventError('the body is a plain-text Falco alert, not JSON; set json_output: true (and json_include_output_property: true) in falco.yaml', 'plainText');
  }
  return parseAndEnrich(body, enrich, warn);
}
