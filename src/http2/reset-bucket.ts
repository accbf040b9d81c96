/** nghttp2's limit on client stream resets per connection: a burst of 1,000, refilled by 33 each whole second. */
const NGHTTP2_RESET_BURST = 1000;
const NGHTTP2_RESET_RATE_PER_SECOND = 33;

/**
 * nghttp2's rapid-reset bucket for one connection (CVE-2023-44487), refilled per whole second of
 * a monotonic clock as nghttp2 does. The own HTTP/2 server enforces it; for Node's sessions the
 * gateway keeps a copy to close them gracefully before nghttp2 cuts them.
 */
export class ResetBucket {
  private tokens = NGHTTP2_RESET_BURST;
  private second: number;

  constructor(monotonicMs: number) {
    this.second = Math.floor(monotonicMs / 1000);
  }

  /** Resets the client may still make now. */
  get left(): number {
    return this.tokens;
  }

  /** Take one reset at `monotonicMs` (performance.now()); false when none was left. */
  take(monotonicMs: number): boolean {
    const second = Math.floor(monotonicMs / 1000);
    if (second > this.second) {
      this.tokens = Math.min(NGHTTP2_RESET_BURST, this.tokens + (second - this.second) * NGHTTP2_RESET_RATE_PER_SECOND);
      this.second = second;
    }
    if (this.tokens === 0) return false;
    this.tokens--;
    return true;
  }
}
