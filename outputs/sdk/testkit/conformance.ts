/**
 * What every output type must show the conformance suite (test/conformance/outputs.test.ts): a
 * fake of its destination that speaks the real protocol, and a way to make it misbehave. The suite
 * then checks, through the whole router, the behaviour every output shares: delivery once, retry
 * of what may be retried, dead letters for refusals, Retry-After, timeouts, partial success, set-up
 * retried until it passes, and no secret in any log, dead letter, /ready or /metrics answer, even
 * when the destination echoes the request back. An output's own test then only covers its
 * payload and protocol.
 *
 * Each output folder exports `conformance: Conformance` from `conformance.ts`.
 */

/** How the destination answers the next calls (then it is back to storing alerts). */
export type Behaviour =
  /** A failure worth retrying (a 5xx, the service's internal error). */
  | 'fail'
  /** A permanent refusal (a 4xx, SenderFault) whose error text echoes the request: URL, headers, credentials. */
  | 'refuse'
  /** Rate limiting (429, Throttling), with `Retry-After: 1` where the protocol has one. */
  | 'throttle'
  /** No answer at all. */
  | 'hang'
  /** Outputs that send several alerts per call: refuse only the alert with marker `test.n` = 1, store the others. */
  | 'refuseMarker1';

export interface Target {
  /** Settings of an instance that sends to this fake, including every secret setting of the type. */
  settings: Record<string, unknown>;
  /** Global settings the instance needs (YAML keys at the top level, e.g. `mutualtlsclient`). */
  global?: Record<string, unknown>;
  /** Values that must never appear in anything the router writes or serves. */
  secrets: string[];
  /** `test.n` markers of the alerts the destination stored, in arrival order, repeats included. */
  delivered(): number[];
  /** Calls the destination received (each send attempt is one or more). */
  calls(): number;
  /** The next `times` calls (default 1) behave so; then the destination stores alerts again. */
  next(behaviour: Behaviour, times?: number): void;
  /**
   * Optional: makes the instance's set-up fail (credentials refused, a certificate missing) until
   * `fix()`; the instance must keep its alerts and deliver them once set-up passes.
   */
  setup?: { break(): void | Promise<void>; fix(): void | Promise<void> };
  close(): Promise<void>;
}

export interface Conformance {
  /** Behaviours the destination can show; the suite says which it skips and why. */
  supports: readonly Behaviour[];
  /** Whether a `throttle` answer carries Retry-After (AWS throttling has none). */
  retryAfter?: boolean;
  /** Why some behaviours are not supported, shown with the skipped tests. */
  unsupportedBecause?: string;
  start(): Promise<Target>;
}
