/**
 * Text for a terminal. route-test prints alert values (chosen by whoever triggered the alert) and
 * silences (made by whoever holds the API token), and a terminal acts on some characters: C0
 * controls (ESC starts a sequence that can rewrite the screen or the window title), DEL, C1
 * controls (U+009B is CSI, a sequence on its own for 8-bit terminals) and the bidirectional
 * controls that reorder what is shown (U+202E turns `gnp.exe` into `exe.png`).
 */

// Every one of those but the newline, which only route-test itself writes raw: values are JSON-quoted
// (JSON.stringify escapes C0) and matchers canonical (quote() in matcher.ts escapes \n).
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Writes each such character as `\uXXXX`. Inside a JSON string that is the same string, so JSON
 * output stays JSON and reads back exact; in a matcher's quoted value it is there to see (a
 * display form: matchers do not read `\u` escapes, so it is not for pasting back as is).
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
