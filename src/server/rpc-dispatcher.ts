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
import type { DescMethod } from "@bufbuild/protobuf";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { Logger } from "../ops/logger.js";
import { fixGrpcMessageTrailer } from "./grpc-message.js";
import { isRelayed, type HttpHandler, type HttpRequest, type HttpResponse } from "./http-types.js";
import type { Http1Exchange } from "../http1/lean-connections.js";
import { Http1ExchangeCall, Http2Call, HttpRequestCall, type FastRoute } from "./fast-path/http-calls.js";
import type { FastSpec } from "./fast-path/fast-call.js";
import { RpcFastPath, type FastPathOptions } from "./fast-path/rpc-fast-path.js";

/** One RPC path: connect-node's handler for it, and its fast-path face when the fast path may serve it. */
interface Route {
  handler: UniversalHandler;
  fast: FastRoute | undefined;
}

export interface RpcDispatcherOptions {
  /** Registers services on the router, as with connect-node's adapter. */
  routes: (router: ConnectRouter) => void;
  /** Connect router options (limits, interceptors, compression, shutdown signal). */
  router: ConnectRouterOptions &
    Pick<FastPathOptions, "readMaxBytes" | "writeMaxBytes" | "acceptCompression" | "interceptors" | "shutdownSignal" | "requestGate">;
  /** Serve plain unary and server-streaming calls on the fast path (false: everything through connect-node). */
  fastPath: boolean;
  /** Called for every request whose path is not an RPC this gateway serves. */
  fallback: HttpHandler;
  /**
   * Called when connect-node refuses a call to a served procedure before any interceptor runs:
   * an unsupported content-type or Connect GET encoding (415), HTTP method (405), or a call
   * streaming both ways over HTTP/1.1 (505). The answer is not yet written.
   */
  onRefused?: (refusal: ConnectRefusal) => void;
  logger: Logger;
}

/** A call connect-node refused before the interceptors ran. */
export interface ConnectRefusal {
  req: HttpRequest;
  res: HttpResponse;
  method: DescMethod;
  status: 415 | 405 | 505;
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
  /**
   * Serve a request of a lean HTTP/1.1 connection if it is a unary call the fast path takes;
   * returns false without touching it otherwise, and node:http serves it.
   */
  handleHttp1Exchange(exchange: Http1Exchange): boolean;
}

/** connect-node's default minimum size for compressing a response message. */
const COMPRESS_MIN_BYTES = 1024;

/**
 * The RPC entry point: resolves the path once in a table, serves plain unary and server-streaming calls on the
 * fast path, and everything else through connect-node's protocol handlers.
 */
export function createRpcDispatcher(options: RpcDispatcherOptions): RpcDispatcher {
  const router = createConnectRouter(options.router);
  const fastSpecs = new Map<string, FastSpec>();
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
          if (method.kind === "unary" || method.kind === "server_streaming") fastSpecs.set(`/${service.typeName}/${method.method.name}`, method);
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

  const serveWithConnect = (handler: UniversalHandler, req: HttpRequest, res: HttpResponse, body?: AsyncIterable<Uint8Array>) => {
    reencodeGrpcMessages(res);
    const uReq =
      body === undefined
        ? universalRequestFromNodeRequest(req, res, undefined, undefined)
        : universalRequestFromNodeRequest(req, res, body as never, undefined);
    handler(uReq)
      .then((uRes) => {
        // connect-node answers these before any interceptor runs: no access-log line says so.
        if (uRes.status === 415 || uRes.status === 405 || uRes.status === 505) {
          try {
            options.onRefused?.({ req, res, method: handler.method, status: uRes.status });
          } catch (error) {
            // The refusal must still be answered.
            options.logger.error({ err: error, method: handler.requestPath }, "reporting a refused call failed");
          }
        }
        return universalResponseToNodeResponse(uRes, res);
      })
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, method: handler.requestPath }, "rpc handler failed");
      });
  };

  const routes = new Map<string, Route>();
  for (const handler of router.handlers) {
    const spec = options.fastPath ? fastSpecs.get(handler.requestPath) : undefined;
    const fast: FastRoute | undefined = spec && {
      spec,
      shutdownSignal: options.router.shutdownSignal,
      serveWithConnect: (req, res, body) => serveWithConnect(handler, req, res, body),
      logFailure: (error) => options.logger.error({ err: error, method: handler.requestPath }, "rpc fast path failed"),
    };
    routes.set(handler.requestPath, { handler, fast });
  }
  const fastPath = new RpcFastPath({
    ...options.router,
    compressMinBytes: COMPRESS_MIN_BYTES,
    // connect-node's own default when no maximum is configured.
    maxTimeoutMs: options.router.maxTimeoutMs ?? Number.MAX_SAFE_INTEGER,
  });

  return {
    handleRequest(req, res) {
      const route = routes.get(pathOf(req.url));
      if (route === undefined) {
        options.fallback(req, res);
        return;
      }
      const accepted = route.fast && !isRelayed(req) && fastPath.accepts(route.fast.spec, req.method, req.headers, req.httpVersionMajor);
      if (!accepted) {
        serveWithConnect(route.handler, req, res);
        return;
      }
      fastPath.serve(new HttpRequestCall(route.fast!, accepted, req, res), req);
    },

    handleStream(stream, headers, rawHeaders) {
      const route = routes.get(pathOf(headers[":path"]));
      const accepted = route?.fast && fastPath.accepts(route.fast.spec, headers[":method"], headers, 2);
      if (!accepted) return false;
      fastPath.serve(new Http2Call(route!.fast!, accepted, headers, stream, rawHeaders), stream);
      return true;
    },

    handleHttp1Exchange(exchange) {
      const route = routes.get(pathOf(exchange.url));
      const fast = route?.fast;
      // Server streams need chunked answers: node:http writes those.
      if (fast === undefined || fast.spec.kind !== "unary") return false;
      const accepted = fastPath.accepts(fast.spec, exchange.method, exchange.headers, 1);
      if (!accepted) return false;
      fastPath.serve(new Http1ExchangeCall(fast, accepted, exchange), exchange);
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

