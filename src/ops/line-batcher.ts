/** A destination that can write a string and flush what it holds (pino's SonicBoom has this shape). */
export interface LineDestination {
  write(data: string): unknown;
  flush(callback?: (error?: Error) => void): void;
}

/**
 * Gathers log lines into batches before handing them to the destination. SonicBoom measures the
 * byte length of its whole pending buffer on every write, so thousands of small lines a second
 * cost it more than formatting them did; one write per batch keeps that to once per batch. The
 * order of lines is kept: every line, from pino or from the access log, goes through here.
 */
export class LineBatcher {
  private pending = "";

  constructor(
    private readonly destination: LineDestination,
    private readonly batchLength: number,
  ) {}

  write(line: string): boolean {
    this.pending += line;
    if (this.pending.length >= this.batchLength) this.handOver();
    return true;
  }

  /** Hand over what is pending, then have the destination write everything out. */
  flush(callback?: (error?: Error) => void): void {
    this.handOver();
    this.destination.flush(callback);
  }

  private handOver(): void {
    if (this.pending === "") return;
    const batch = this.pending;
    this.pending = "";
    this.destination.write(batch);
  }
}
