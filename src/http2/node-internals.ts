/*
 * What the modules in this folder need to know about Node's private HTTP/2 code, in one place.
 * They reach into it only on the Node majors whose lib/internal/http2 code was read for every
 * step they replace (20.20 and 22.23: the same in both for what is used here); on any other
 * major, or when what they find does not have the expected shape, they leave Node alone.
 */

/**
 * Node majors whose HTTP/2 internals were read for these modules. Another major keeps Node's own
 * behaviour until someone reads its code and adds it here: a changed flag or a new use of a
 * replaced table there would break every stream.
 */
export const CHECKED_NODE_MAJORS: readonly number[] = [20, 22];

/** Whether this process runs on a Node major whose HTTP/2 internals were checked. */
export const onCheckedNodeMajor = CHECKED_NODE_MAJORS.includes(Number(process.versions.node.split(".")[0]));

/** The symbol-keyed property of `holder` (own, or on its prototype chain) with this description whose value `accept` takes. */
export function findSymbolKey(holder: object, description: string, accept: (value: unknown) => boolean): symbol | undefined {
  for (let target: object | null = holder; target !== null; target = Object.getPrototypeOf(target) as object | null) {
    for (const key of Object.getOwnPropertySymbols(target)) {
      if (key.description === description && accept((holder as Record<symbol, unknown>)[key])) return key;
    }
  }
  return undefined;
}
