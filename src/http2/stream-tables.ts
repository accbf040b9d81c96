import type * as http2 from "node:http2";
import { keepShapeOf } from "../ops/shape-specimens.js";
import { findSymbolKey, onCheckedNodeMajor } from "./node-internals.js";

/*
 * Why these tables exist: V8 keeps a JS Map or Set in a hash table that it rebuilds every few
 * hundred additions when entries keep being added and deleted, and the table it leaves behind
 * keeps a pointer to its successor (for iterators that are still walking it) and the entries
 * it held. While the tables are young that costs nothing. But a full collection moves the
 * current table to the old generation, and from then on every later table, and every entry
 * each one held, is reachable from the old generation: young collections copy and promote
 * them all, and only the next full collection frees them.
 *
 * Node's HTTP/2 keeps each connection's streams in such a Map. With a few dozen calls in flight
 * on a connection, that turned every ended call into old-generation garbage after the first
 * full collection under load: a bare node:http2 server promoted about 1.1 MB per young
 * collection instead of about 5 KB, spent twice the time in young collections and ran a full
 * collection about three times as often (see bench/README.md, "GC"). A plain object
 * keyed by stream id rebuilds its storage without the link to the next one, so ended streams
 * stay young garbage.
 */

/**
 * Streams of one HTTP/2 connection by id: a Map-shaped table whose ended entries stay young
 * garbage (see the note above). The stream it removed last stays alive as a shape specimen.
 */
export class StreamTable<T> {
  // Integer keys: V8 keeps these as indexed elements (a number dictionary once they are sparse).
  private entries: Record<number, T> = Object.create(null) as Record<number, T>;
  private count = 0;

  /** How many streams are in the table. */
  get size(): number {
    return this.count;
  }

  /** The stream with this id, if it is in the table. */
  get(id: number): T | undefined {
    return this.entries[id];
  }

  /** Puts a stream in the table under its id. */
  set(id: number, stream: T): this {
    if (this.entries[id] === undefined) this.count++;
    this.entries[id] = stream;
    return this;
  }

  /**
   * Takes the stream with this id out of the table, keeping it as its class's shape specimen
   * (src/ops/shape-specimens.ts); false if there was none.
   */
  delete(id: number): boolean {
    const stream = this.entries[id];
    if (stream === undefined) return false;
    delete this.entries[id];
    this.count--;
    // Streams leave their table as their call ends (Node's from _destroy, just before 'close'; the
    // own client's on its last frame, perhaps before its reader is done). What matters is that
    // the specimen is a reference: the maps it reaches when it has finished are the ones kept.
    if (typeof stream === "object" && stream !== null) keepShapeOf(stream);
    return true;
  }

  /** Empties the table. */
  clear(): void {
    this.entries = Object.create(null) as Record<number, T>;
    this.count = 0;
  }

  /**
   * Calls back for every stream in id order (for streams one side opens, the order added). A
   * stream removed by an earlier callback is skipped, as Map.forEach does; unlike Map.forEach,
   * one added meanwhile is not visited (Node only adds streams from its own frame callbacks).
   */
  forEach(callback: (stream: T, id: number, table: this) => void): void {
    for (const key in this.entries) {
      const stream = this.entries[key];
      if (stream !== undefined) callback(stream, Number(key), this);
    }
  }

  /** The streams in id order, taken when called. */
  values(): IterableIterator<T> {
    return Object.values(this.entries)[Symbol.iterator]();
  }
}

/**
 * Streams not yet given an id: a Set-shaped list. Its operations are linear, which is fine
 * because Node holds a stream here only until it has an id (on a server, within its
 * constructor; on a client, until the connection is up), so it stays tiny.
 */
export class PendingStreamList<T> {
  private readonly streams: T[] = [];

  /** How many streams are in the list. */
  get size(): number {
    return this.streams.length;
  }

  /** Adds a stream (once). */
  add(stream: T): this {
    if (!this.streams.includes(stream)) this.streams.push(stream);
    return this;
  }

  /** Takes a stream out of the list; false if it was not there. */
  delete(stream: T): boolean {
    const index = this.streams.indexOf(stream);
    if (index < 0) return false;
    this.streams.splice(index, 1);
    return true;
  }

  /** Calls back for every stream in the order added; a stream removed meanwhile is skipped, as Set.forEach does, and one added meanwhile is not visited. */
  forEach(callback: (stream: T, same: T, list: this) => void): void {
    for (const stream of [...this.streams]) {
      if (this.streams.includes(stream)) callback(stream, stream, this);
    }
  }
}

/** The part of Node's per-session state this module replaces. */
interface NodeSessionStreamState {
  streams: Map<number, unknown> | StreamTable<unknown>;
  pendingStreams: Set<unknown> | PendingStreamList<unknown>;
}

/** Node's private per-session state symbol, found on the first session that has it. */
let sessionStateKey: symbol | undefined;

/** Whether `value` has the methods Node calls on a session's Map of streams (its own is a primordials SafeMap, not instanceof Map). */
function isStreamMap(value: unknown): value is Map<number, unknown> {
  const map = value as Partial<Map<number, unknown>> | null;
  return typeof map === "object" && map !== null && typeof map.size === "number" && [map.get, map.set, map.delete, map.forEach].every((method) => typeof method === "function");
}

/** Whether `value` has the methods Node calls on a session's Set of pending streams. */
function isStreamSet(value: unknown): value is Set<unknown> {
  const set = value as Partial<Set<unknown>> | null;
  return typeof set === "object" && set !== null && typeof set.size === "number" && [set.add, set.delete, set.forEach].every((method) => typeof method === "function");
}

/** Whether `value` is a session state holding the stream Map and Set this module replaces. */
function isSessionStreamState(value: unknown): value is NodeSessionStreamState {
  const state = value as Partial<NodeSessionStreamState> | null | undefined;
  return typeof state === "object" && state !== null && isStreamMap(state.streams) && isStreamSet(state.pendingStreams);
}

function nodeStreamState(session: http2.Http2Session): NodeSessionStreamState | undefined {
  sessionStateKey ??= findSymbolKey(session, "state", isSessionStreamState);
  if (sessionStateKey === undefined) return undefined;
  const state = (session as unknown as Record<symbol, unknown>)[sessionStateKey];
  return isSessionStreamState(state) ? state : undefined;
}

/**
 * Swaps Node's Map and Set of a session's streams for tables whose ended streams stay young
 * garbage (see the note above). Returns false, changing nothing, on a Node major not checked
 * or one that keeps its session state in some other shape: the session then works as before,
 * only with more GC.
 */
export function installGcFriendlyStreamTables(session: http2.Http2Session): boolean {
  // Checked for these tables: Node uses get, set, delete, size and forEach on them (see node-internals.ts).
  if (!onCheckedNodeMajor) return false;
  const state = nodeStreamState(session);
  if (!state) return false;
  if (state.streams instanceof StreamTable) return true;
  const streams = new StreamTable<unknown>();
  state.streams.forEach((stream, id) => streams.set(id as number, stream));
  const pending = new PendingStreamList<unknown>();
  state.pendingStreams.forEach((stream) => pending.add(stream));
  state.streams = streams;
  state.pendingStreams = pending;
  return true;
}
