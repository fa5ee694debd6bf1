// Reconnection delays: exponential backoff with full jitter, so that the
// clients of a restarted server do not all come back in the same instant.

export interface BackoffOptions {
  /** Delay before the first retry, in ms. Default 100. */
  initialMs?: number;
  /** The largest delay, in ms. Default 5000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay that is random, 0 to 1. Default 0.5. */
  jitter?: number;
}

/**
 * Backoff yields the delays before successive reconnection attempts:
 * initial·factorⁿ capped at max, of which the jitter fraction is drawn at
 * random (a delay d with jitter j lies in [d·(1−j), d]).
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly jitter: number;
  private attempt = 0;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}, random: () => number = Math.random) {
    this.initialMs = opts.initialMs ?? 100;
    this.maxMs = opts.maxMs ?? 5000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.5;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs) || !(this.factor >= 1) || !(this.jitter >= 0 && this.jitter <= 1)) {
      throw new RangeError(
        `msgtrans: backoff needs 0 < initialMs <= maxMs, factor >= 1 and 0 <= jitter <= 1 (got ${this.initialMs}, ${this.maxMs}, ${this.factor}, ${this.jitter})`,
      );
    }
    this.random = random;
  }

  /** The delay before the next attempt, in ms; each call counts one attempt. */
  next(): number {
    const d = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    if (d < this.maxMs) this.attempt++;
    return d * (1 - this.jitter * this.random());
  }

  /** Starts again from the initial delay (after a connection succeeded). */
  reset(): void {
    this.attempt = 0;
  }
}
