/*
 * Node's own HTTP/1.1 parser (llhttp, through the binding node:http uses), for the lean HTTP/1.1
 * connections. Parsing stays Node's: the same limits, the same strictness, the same errors; only
 * the request and response objects built around it are left out.
 *
 * The binding is not public API. It is reached only on the Node majors checked for what is used
 * here (lib/_http_server.js and src/node_http_parser.cc read for 20.20; test/http1 and the
 * differential test pass on 22.23 too), and only when what is found has the expected shape;
 * otherwise every connection stays with node:http.
 */
import * as http from "node:http";
import { createRequire } from "node:module";
import { CHECKED_NODE_MAJORS, findSymbolKey } from "../http2/node-internals.js";

/** Raw header names and values, alternating, as llhttp hands them over. */
export type RawHeaderList = string[];

/** One llhttp parser instance of Node's binding (lib/_http_common.js's HTTPParser). */
export interface NodeHttpParser {
  /** Callbacks, keyed by the binding's numeric slots. */
  [slot: number]: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number, connections?: object): void;
  /** Parse bytes: the number of bytes used, or an Error with `code` (HPE_…) and `bytesParsed`. */
  execute(data: Buffer): number | Error;
  /** Have the parser read the socket's native handle itself, without 'data' events. */
  consume(handle: object): void;
  unconsume(): void;
  /** During kOnExecute of a consumed handle: the chunk just parsed. */
  getCurrentBuffer(): Buffer;
  /** Leave the connections list (header timeouts no longer apply). */
  remove(): void;
  close(): void;
}

/** The binding's request type and callback slot numbers. */
export interface ParserSlots {
  REQUEST: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

/** The parts of the binding the lean connections use. */
export interface NodeParserBinding extends ParserSlots {
  createParser(): NodeHttpParser;
  /**
   * A list the parsers join: expired(headersTimeout, requestTimeout) finds the slow ones, idle()
   * those between requests (no message begun), as node:http uses it.
   */
  createConnectionsList(): { expired(headersTimeoutMs: number, requestTimeoutMs: number): NodeHttpParser[]; idle(): NodeHttpParser[] };
  /** The name of the method llhttp numbered so, or undefined for a number it never gave a request here. */
  methodName(index: number): string | undefined;
}

interface ParserClass extends ParserSlots {
  new (): NodeHttpParser;
  prototype: object;
}

/** Node's parser binding, or undefined when this Node is not one whose internals were checked. */
export const nodeParserBinding: NodeParserBinding | undefined = findBinding();

function findBinding(): NodeParserBinding | undefined {
  if (!CHECKED_NODE_MAJORS.includes(Number(process.versions.node.split(".")[0]))) return undefined;
  try {
    const Parser = (createRequire(import.meta.url)("_http_common") as { HTTPParser?: ParserClass }).HTTPParser;
    if (typeof Parser !== "function") return undefined;
    for (const name of ["initialize", "execute", "consume", "unconsume", "getCurrentBuffer", "remove", "close"]) {
      if (typeof (Parser.prototype as Record<string, unknown>)[name] !== "function") return undefined;
    }
    const slots = [Parser.REQUEST, Parser.kOnHeaders, Parser.kOnHeadersComplete, Parser.kOnBody, Parser.kOnMessageComplete, Parser.kOnExecute];
    if (!slots.every((slot) => Number.isInteger(slot))) return undefined;
    // The connections-list class is not exported; an http.Server makes an instance of it when
    // it starts listening (and a timer, which close() clears).
    const probe = http.createServer();
    probe.emit("listening");
    probe.close();
    const key = findSymbolKey(probe, "http.server.connections", (value) => typeof (value as { expired?: unknown } | undefined)?.expired === "function");
    if (key === undefined) return undefined;
    const ConnectionsList = ((probe as unknown as Record<symbol, object>)[key]).constructor as new () => ReturnType<NodeParserBinding["createConnectionsList"]>;
    if (typeof (ConnectionsList.prototype as { idle?: unknown }).idle !== "function") return undefined;
    const names = methodNumbers(Parser);
    const byNumber: string[] = [];
    for (const [name, index] of names) byNumber[index] = name;
    if (!byNumber.includes("POST")) return undefined;
    return {
      createParser: () => new Parser(),
      createConnectionsList: () => new ConnectionsList(),
      methodName: (index) => byNumber[index],
      REQUEST: Parser.REQUEST,
      kOnHeaders: Parser.kOnHeaders,
      kOnHeadersComplete: Parser.kOnHeadersComplete,
      kOnBody: Parser.kOnBody,
      kOnMessageComplete: Parser.kOnMessageComplete,
      kOnExecute: Parser.kOnExecute,
    };
  } catch {
    return undefined;
  }
}

/**
 * llhttp numbers methods in its own order, which differs from the exported `methods` list
 * (node:http maps them with a table it does not export). So each method name node:http knows,
 * and the few more llhttp parses, is parsed once here and its number noted.
 */
function methodNumbers(Parser: ParserClass): Map<string, number> {
  const numbers = new Map<string, number>();
  const candidates = new Set([...http.METHODS, "QUERY", "PRI", "SOURCE"]);
  for (const name of candidates) {
    const parser = new Parser();
    parser.initialize(Parser.REQUEST, {}, 0, 0);
    parser[Parser.kOnHeadersComplete] = (_major: number, _minor: number, _headers: unknown, method: number) => {
      numbers.set(name, method);
      return 0;
    };
    parser.execute(Buffer.from(`${name} / HTTP/1.1\r\nHost: x\r\n\r\n`, "latin1"));
    parser.close();
  }
  return numbers;
}
