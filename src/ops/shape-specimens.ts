/**
 * Keeps one finished specimen of each kind of short-lived object on the hot path alive, so that
 * a full garbage collection does not throw away their hidden classes and, with them, the
 * optimized code of every function that handles them.
 *
 * Why: V8 describes an object's layout with a hidden class (a "map") and extends it one step
 * per property added, so a stream that has gone through a whole call ends on a map that only
 * finished streams have. Optimized code refers to the maps it was specialised for weakly, and V8
 * means to keep a map that optimized code used alive for a few collections after its last
 * instance died, but only while the map's constructor is found alive, and it checks that right
 * after marking the roots. In an atomic full collection (the gateway runs with
 * --no-incremental-marking, and the GC pacer forces them) almost nothing beyond the roots is
 * marked yet, so the map is dropped whenever no instance happens to be alive: the normal case
 * for end-of-call maps, and for an Immediate between event-loop turns. Every full collection
 * then deoptimized the code built on them, measured with --trace-deopt: about 30–45 functions
 * each time (Node's stream, event-emitter and timer code and our trailers scheduling), which V8
 * recompiled on its helper threads within the next second. At 1 × 100 saturation, with a paced
 * collection every 1–2 s, the recompiling took about a tenth of the gateway's CPU. Keeping a
 * specimen of each alive keeps the maps, and the code. Only the maps on the path the specimen
 * took are kept (a call that ended otherwise, by a reset say, went through others).
 *
 * The price is memory: one finished object per class and whatever it still references. A Node
 * stream drops its session and native handle when it is destroyed but keeps its listeners, and
 * through them the call that listened (the pass-through releases its request message when the
 * call completes, but not the request headers); the own upstream client's stream keeps its
 * connection.
 */

/** The most recently finished object of each class, by prototype. */
const specimens = new Map<object | null, object>();

/**
 * Keeps `value` as its class's specimen until the next finished object of that class replaces it.
 * Meant for classes defined once (stream classes, Node's Immediate): one slot per prototype
 * bounds what this holds only while prototypes are not made per connection or per call.
 */
export function keepShapeOf(value: object): void {
  // The prototype, not `constructor`: reading it runs no getter, and V8 groups maps by it too.
  specimens.set(Object.getPrototypeOf(value) as object | null, value);
}

/** The specimens kept now (for tests). */
export function keptSpecimens(): readonly object[] {
  return [...specimens.values()];
}

function doNothing(): void {}

/**
 * Wraps a function that runs a full collection so that an Immediate is pending while it runs:
 * the pacer collects from a timer, when the Immediates of the previous turn have all run and
 * died, and each collection would otherwise drop their maps (see the note above). Then it is
 * cleared, which takes it out of Node's queue (an Immediate that has run stays linked to the rest
 * of its turn's list) without changing its map, and kept as a specimen for the full collections
 * V8 starts by itself meanwhile.
 */
export function collectingWithImmediateAlive(collect: () => void): () => void {
  return () => {
    const immediate = setImmediate(doNothing);
    try {
      collect();
    } finally {
      clearImmediate(immediate);
      keepShapeOf(immediate);
    }
  };
}
