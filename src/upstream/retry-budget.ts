/**
 * A retry budget (as in Finagle and Envoy): retries may add at most `ratio` times the calls of
 * the last 10 seconds, plus `minPerSecond` always, so an outage cannot multiply the load on the
 * endpoints that are left.
 */
export class RetryBudget {
  private static readonly WINDOW_SECONDS = 10;
  private readonly calls = new Float64Array(RetryBudget.WINDOW_SECONDS);
  private readonly retries = new Float64Array(RetryBudget.WINDOW_SECONDS);
  private currentSecond = 0;

  constructor(
    private readonly ratio: number,
    private readonly minPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count a call (first attempts only). */
  recordCall(): void {
    this.calls[this.slot()]++;
  }

  /** Take one retry from the budget; false when it is spent. */
  tryRetry(): boolean {
    const slot = this.slot();
    let calls = 0;
    let retries = 0;
    for (let i = 0; i < RetryBudget.WINDOW_SECONDS; i++) {
      calls += this.calls[i];
      retries += this.retries[i];
    }
    const allowed = calls * this.ratio + this.minPerSecond * RetryBudget.WINDOW_SECONDS;
    if (retries + 1 > allowed) return false;
    this.retries[slot]++;
    return true;
  }

  /** The ring slot of the current second, clearing the slots of the seconds that passed. */
  private slot(): number {
    const second = Math.floor(this.now() / 1000);
    const elapsed = second - this.currentSecond;
    if (elapsed > 0) {
      const clear = Math.min(elapsed, RetryBudget.WINDOW_SECONDS);
      for (let k = 1; k <= clear; k++) {
        const i = (this.currentSecond + k) % RetryBudget.WINDOW_SECONDS;
        this.calls[i] = 0;
        this.retries[i] = 0;
      }
      this.currentSecond = second;
    }
    return second % RetryBudget.WINDOW_SECONDS;
  }
}

export interface BackoffPolicy {
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
}

/** Full-jitter exponential backoff before retry number `retry` (1 for the first retry). */
export function backoffMs(policy: BackoffPolicy, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.backoffMultiplier ** (retry - 1));
  return Math.round(random() * ceiling);
}
