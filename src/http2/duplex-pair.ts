import { Duplex } from "node:stream";

/**
 * Two connected in-memory duplex streams: what one writes, the other reads (Node 22 has
 * stream.duplexPair; Node 20 does not). Ending one side ends the other's readable side;
 * destroying one destroys both.
 */
export function duplexPair(): [Duplex, Duplex] {
  const left = new PairEnd();
  const right = new PairEnd();
  left.peer = right;
  right.peer = left;
  return [left, right];
}

class PairEnd extends Duplex {
  peer: PairEnd | undefined;
  private pendingCallback: (() => void) | undefined;

  _read(): void {
    // The writer waits for its chunk to be read: pushed data is not buffered twice.
    const callback = this.peer?.pendingCallback;
    if (callback !== undefined) {
      this.peer!.pendingCallback = undefined;
      callback();
    }
  }

  _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.peer!;
    if (peer.push(chunk)) callback();
    else this.pendingCallback = callback;
  }

  _final(callback: (error?: Error | null) => void): void {
    this.peer?.push(null);
    callback();
  }

  _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    const pending = this.pendingCallback;
    this.pendingCallback = undefined;
    pending?.();
    if (peer !== undefined && !peer.destroyed) peer.destroy();
    callback(error);
  }
}
