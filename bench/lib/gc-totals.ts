/**
 * What servers/gc-meter.ts writes and the runner reads: a server's GC pauses so far. A module of
 * its own because the meter starts measuring when it is imported, and the runner must not.
 */

/** What a server wrote: its GC pauses since it started, in milliseconds. */
export interface GcTotals {
  /** Young-generation collections (scavenges). */
  youngMs: number;
  /** Full collections (mark-compact), and the pause that starts incremental marking. */
  fullMs: number;
  /** Every full collection's pause, in order: a round's longest is among those after its first reading. */
  fullPausesMs: number[];
}

/** How often the totals are written when they changed; the runner waits WRITE_EVERY_MS * 1.5 before its last reading. */
export const WRITE_EVERY_MS = 50;
