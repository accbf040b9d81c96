/**
 * HTTP/1.1 answers finished while the event loop works through one batch of ready sockets are
 * written together once that batch is done (in setImmediate, the same loop turn), not one at a
 * time between requests. Envoy's dispatcher and Netty's flush consolidation do the same.
 *
 * Why: every response written to a socket may wake the client up. Written in between requests,
 * each one finds the client asleep again and pays a full wake-up (on this benchmark's VM, 6–12 µs
 * of our CPU per response over loopback). Written back to back, one wake-up serves the batch, and
 * the client's next requests arrive together too. A lone request waits for nothing: its turn
 * ends right after it.
 */

/** One deferred write: runs it, or fails the call if writing throws. */
export interface DeferredWrite {
  writeNow(): void;
  failWrite(error: unknown): void;
}

let pending: DeferredWrite[] = [];

/** Write at the end of this event-loop turn, together with the other answers finished in it. */
export function writeAtEndOfTurn(write: DeferredWrite): void {
  if (pending.length === 0) setImmediate(flush);
  pending.push(write);
}

function flush(): void {
  const writes = pending;
  pending = [];
  for (const write of writes) {
    try {
      write.writeNow();
    } catch (error) {
      write.failWrite(error);
    }
  }
}
