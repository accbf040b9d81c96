import { Code, ConnectError } from "@connectrpc/connect";
import type { CancelSignal } from "./cluster.js";

/** Gives a slot back; idempotent. */
export type ReleaseSlot = () => void;

interface Waiter {
  grant: (release: ReleaseSlot) => void;
  fail: (reason: unknown) => void;
}

/**
 * Bounds the calls one route has open upstream (`maxConcurrent`) and the calls waiting for a
 * slot (`maxPending`); beyond both, calls fail at once with `unavailable` instead of piling up
 * in the gateway's memory while the upstream is slow.
 */
export class CircuitBreaker {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    private readonly route: string,
    private readonly maxConcurrent: number,
    private readonly maxPending: number,
  ) {}

  /** Calls holding a slot now. */
  get activeCalls(): number {
    return this.active;
  }

  /** A slot right away (no promise on the common path), a promise for one, or a ConnectError thrown. */
  acquire(signal: CancelSignal | undefined): ReleaseSlot | Promise<ReleaseSlot> {
    if (this.active < this.maxConcurrent) {
      this.active++;
      return this.releaser();
    }
    if (this.waiting.length >= this.maxPending) {
      throw new ConnectError(
        `route ${this.route}: ${this.active} calls in flight and ${this.waiting.length} waiting; circuit breaker open`,
        Code.Unavailable,
      );
    }
    return new Promise<ReleaseSlot>((resolve, reject) => {
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
        fail: reject,
      };
      const onAbort = () => {
        const index = this.waiting.indexOf(waiter);
        if (index !== -1) this.waiting.splice(index, 1);
        reject(ConnectError.from(signal!.reason, Code.Canceled));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private releaser(): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` stays as it is.
      if (next) next.grant(this.releaser());
      else this.active--;
    };
  }
}
