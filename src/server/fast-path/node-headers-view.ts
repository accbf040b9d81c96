import type { IncomingHttpHeaders } from "node:http";

/** One header of Node's parsed headers by lower-case name, repeated values comma-joined, as Headers.get answers; null if absent. */
export function nodeHeaderValue(source: IncomingHttpHeaders, key: string): string | null {
  // HTTP/1.1 header objects are plain objects: "constructor" must not be found on the prototype.
  if (!Object.hasOwn(source, key)) return null;
  const value = source[key];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * A read-mostly Headers view over Node's already-parsed request headers.
 * Building a real Headers object validates and copies every header on every call;
 * interceptors and implementations usually read one or two, so this view defers the copy
 * until something writes to it.
 */
export class NodeHeadersView {
  private copy: Headers | undefined;

  constructor(private readonly source: IncomingHttpHeaders) {}

  /** The view as the Headers type the Connect APIs expect. */
  static of(source: IncomingHttpHeaders): Headers {
    return new NodeHeadersView(source) as unknown as Headers;
  }

  get(name: string): string | null {
    if (this.copy) return this.copy.get(name);
    return nodeHeaderValue(this.source, name.toLowerCase());
  }

  has(name: string): boolean {
    if (this.copy) return this.copy.has(name);
    const key = name.toLowerCase();
    return Object.hasOwn(this.source, key) && this.source[key] !== undefined;
  }

  getSetCookie(): string[] {
    return this.materialize().getSetCookie();
  }

  set(name: string, value: string): void {
    this.materialize().set(name, value);
  }

  append(name: string, value: string): void {
    this.materialize().append(name, value);
  }

  delete(name: string): void {
    this.materialize().delete(name);
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.materialize().forEach(callback, thisArg);
  }

  entries(): HeadersIterator<[string, string]> {
    return this.materialize().entries();
  }

  keys(): HeadersIterator<string> {
    return this.materialize().keys();
  }

  values(): HeadersIterator<string> {
    return this.materialize().values();
  }

  [Symbol.iterator](): HeadersIterator<[string, string]> {
    return this.materialize()[Symbol.iterator]();
  }

  private materialize(): Headers {
    if (this.copy) return this.copy;
    const headers = new Headers();
    for (const [name, value] of Object.entries(this.source)) {
      // HTTP/2 pseudo-headers (":path") are not headers in the Fetch sense.
      if (value === undefined || name.startsWith(":")) continue;
      if (Array.isArray(value)) for (const item of value) headers.append(name, item);
      else headers.set(name, value);
    }
    return (this.copy = headers);
  }
}
