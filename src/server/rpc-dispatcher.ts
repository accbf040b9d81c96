import * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createServiceImplSpec,
  type ConnectRouter,
  type ConnectRouterOptions,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { Logger } from "../ops/logger.js";
import { fixGrpcMessageTrailer } from "./grpc-message.js";
import { httpDate } from "./http-date.js";
import type { HttpHandler, HttpRequest, HttpResponse } from "./http-types.js";
import { UnaryFastPath, type FastPathOptions, type UnaryReply } from "./fast-path/unary-fast-path.js";

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** One RPC path: connect-node's handler for it, and the unary implementation when the fast path may serve it. */
interface Route {
  handler: UniversalHandler;
  fastUnary: UnarySpec | undefined;
}

export interface RpcDispatcherOptions {
  /** Registers services on the router, as with connect-node's adapter. */
  routes: (router: ConnectRouter) => void;
  /** Connect router options (limits, interceptors, compression, shutdown signal). */
  router: ConnectRouterOptions &
    Pick<FastPathOptions, "readMaxBytes" | "writeMaxBytes" | "acceptCompression" | "interceptors" | "shutdownSignal" | "requestGate">;
  /** Serve plain unary calls on the fast path (false: everything through connect-node). */
  fastPath: boolean;
  /** Called for every request whose path is not an RPC this gateway serves. */
  fallback: HttpHandler;
  logger: Logger;
}

/** The gateway's RPC entry points, for Node's request API and for raw HTTP/2 streams. */
export interface RpcDispatcher {
  /** Serve a request through Node's (HTTP/1.1 or HTTP/2 compatibility) request API. */
  handleRequest: HttpHandler;
  /**
   * Serve a raw HTTP/2 stream on the fast path if it qualifies; returns false without touching
   * the stream otherwise, and the caller goes through handleRequest.
   */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): boolean;
}

/** connect-node's default minimum size for compressing a response message. */
const COMPRESS_MIN_BYTES = 1024;

/**
 * The RPC entry point: resolves the path once in a table, serves plain unary calls on the
 * fast path, and everything else through connect-node's protocol handlers.
 */
export function createRpcDispatcher(options: RpcDispatcherOptions): RpcDispatcher {
  const router = createConnectRouter(options.router);
  const unarySpecs = new Map<string, UnarySpec>();
  // Record what is registered, so the fast path can call the same implementations.
  const recordingRouter: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, handlerOptions) {
      router.service(service, implementation, handlerOptions);
      if (handlerOptions === undefined) {
        const spec = createServiceImplSpec(service, implementation);
        for (const method of Object.values(spec.methods)) {
          if (method.kind === "unary") unarySpecs.set(`/${service.typeName}/${method.method.name}`, method);
        }
      }
      return recordingRouter;
    },
    rpc(method, implementation, handlerOptions) {
      router.rpc(method, implementation, handlerOptions);
      return recordingRouter;
    },
  };
  options.routes(recordingRouter);

  const routes = new Map<string, Route>();
  const fastPathAllowed = options.fastPath;
  for (const handler of router.handlers) {
    routes.set(handler.requestPath, {
      handler,
      fastUnary: fastPathAllowed ? unarySpecs.get(handler.requestPath) : undefined,
    });
  }
  const fastPath = new UnaryFastPath({
    ...options.router,
    compressMinBytes: COMPRESS_MIN_BYTES,
    // connect-node's own default when no maximum is configured.
    maxTimeoutMs: options.router.maxTimeoutMs ?? Number.MAX_SAFE_INTEGER,
  });

  const serveWithConnect = (route: Route, req: HttpRequest, res: HttpResponse, body?: AsyncIterable<Uint8Array>) => {
    reencodeGrpcMessages(res);
    const uReq =
      body === undefined
        ? universalRequestFromNodeRequest(req, res, undefined, undefined)
        : universalRequestFromNodeRequest(req, res, body as never, undefined);
    route.handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, method: route.handler.requestPath }, "rpc handler failed");
      });
  };
  const failed = (route: Route, destroy: () => void) => (reason: unknown) => {
    options.logger.error({ err: reason, method: route.handler.requestPath }, "rpc fast path failed");
    destroy();
  };

  return {
    handleRequest(req, res) {
      const route = routes.get(pathOf(req.url));
      if (route === undefined) {
        options.fallback(req, res);
        return;
      }
      const accepted = route.fastUnary && fastPath.accepts(req.method, req.headers, req.httpVersionMajor);
      if (!accepted) {
        serveWithConnect(route, req, res);
        return;
      }
      fastPath.serve(
        route.fastUnary!,
        accepted,
        req as NodeJS.ReadableStream,
        {
          headers: req.headers,
          url: () => requestUrl(req),
          onClientGone: (listener) => res.once("close", listener),
        },
        {
          write: (reply) => writeToResponse(res, reply),
          replay: (alreadyRead, ended) => serveWithConnect(route, req, res, replayBody(alreadyRead, ended ? undefined : req)),
          fail: failed(route, () => res.destroy()),
        },
      );
    },

    handleStream(stream, headers, rawHeaders) {
      const route = routes.get(pathOf(headers[":path"]));
      const accepted = route?.fastUnary && fastPath.accepts(headers[":method"], headers, 2);
      if (!route || !accepted) return false;
      fastPath.serve(
        route.fastUnary!,
        accepted,
        stream,
        {
          headers,
          url: () => `${headers[":scheme"] ?? "http"}://${headers[":authority"] ?? "localhost"}${headers[":path"]}`,
          onClientGone: (listener) => stream.once("close", listener),
        },
        {
          write: (reply) => writeToStream(stream, reply),
          replay: (alreadyRead, ended) => {
            // connect-node works on Node's request API: wrap the stream the way Node's own server would.
            const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
            const res = new http2.Http2ServerResponse(stream);
            serveWithConnect(route, req, res, replayBody(alreadyRead, ended ? undefined : req));
          },
          fail: failed(route, () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)),
        },
      );
      return true;
    },
  };
}

/** connect-node writes gRPC trailers through addTrailers; give their grpc-message the spec's encoding. */
function reencodeGrpcMessages(res: HttpResponse): void {
  const withTrailers = res as { addTrailers(trailers: Record<string, unknown>): void };
  const addTrailers = withTrailers.addTrailers.bind(res);
  withTrailers.addTrailers = (trailers) => {
    fixGrpcMessageTrailer(trailers);
    addTrailers(trailers);
  };
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

function writeToResponse(res: HttpResponse, reply: UnaryReply): void {
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(reply.status, reply.headers);
  if (reply.trailers) (res as { addTrailers(t: Readonly<Record<string, string | string[]>>): void }).addTrailers(reply.trailers);
  if (reply.body) res.end(reply.body);
  else res.end();
}

function writeToStream(stream: http2.ServerHttp2Stream, reply: UnaryReply): void {
  if (stream.destroyed || stream.closed) return;
  const headers = reply.headers as http2.OutgoingHttpHeaders;
  headers[":status"] = reply.status;
  headers.date = httpDate();
  const trailers = reply.trailers;
  if (trailers) {
    stream.respond(headers, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
  } else {
    stream.respond(headers);
  }
  if (reply.body) stream.end(reply.body);
  else stream.end();
}

function requestUrl(req: HttpRequest): string {
  const encrypted = "encrypted" in req.socket && (req.socket as { encrypted?: boolean }).encrypted;
  const authority = "authority" in req ? req.authority : req.headers.host;
  return new URL(req.url ?? "/", `${encrypted ? "https" : "http"}://${authority ?? "localhost"}`).toString();
}

/** The bytes the fast path already read, followed by whatever the request still has to send. */
async function* replayBody(alreadyRead: Buffer[], rest: AsyncIterable<Buffer> | undefined): AsyncGenerator<Uint8Array> {
  yield* alreadyRead;
  if (rest) yield* rest;
}
