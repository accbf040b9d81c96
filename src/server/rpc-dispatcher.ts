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
import type { HttpHandler, HttpRequest, HttpResponse } from "./http-types.js";
import { UnaryFastPath, type FastPathOptions } from "./fast-path/unary-fast-path.js";

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
  router: ConnectRouterOptions & Pick<FastPathOptions, "readMaxBytes" | "writeMaxBytes" | "acceptCompression" | "interceptors" | "shutdownSignal">;
  /** Serve plain unary calls on the fast path (false: everything through connect-node). */
  fastPath: boolean;
  /** Called for every request whose path is not an RPC this gateway serves. */
  fallback: HttpHandler;
  logger: Logger;
}

/** connect-node's default minimum size for compressing a response message. */
const COMPRESS_MIN_BYTES = 1024;

/**
 * The RPC entry point: resolves the path once in a table, serves plain unary calls on the
 * fast path, and everything else through connect-node's protocol handlers.
 */
export function createRpcDispatcher(options: RpcDispatcherOptions): HttpHandler {
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
  for (const handler of router.handlers) {
    routes.set(handler.requestPath, {
      handler,
      fastUnary: options.fastPath && !options.router.requestGate ? unarySpecs.get(handler.requestPath) : undefined,
    });
  }
  const fastPath = new UnaryFastPath({ ...options.router, compressMinBytes: COMPRESS_MIN_BYTES });

  const serveWithConnect = (route: Route, req: HttpRequest, res: HttpResponse, body?: AsyncIterable<Uint8Array>) => {
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

  return function dispatch(req, res) {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    const route = routes.get(query === -1 ? url : url.slice(0, query));
    if (route === undefined) {
      options.fallback(req, res);
      return;
    }
    if (
      route.fastUnary !== undefined &&
      fastPath.tryServe(route.fastUnary, req, res, (alreadyRead, ended) =>
        serveWithConnect(route, req, res, replayBody(alreadyRead, ended ? undefined : req)),
      )
    ) {
      return;
    }
    serveWithConnect(route, req, res);
  };
}

/** The bytes the fast path already read, followed by whatever the request still has to send. */
async function* replayBody(alreadyRead: Buffer[], rest: AsyncIterable<Buffer> | undefined): AsyncGenerator<Uint8Array> {
  yield* alreadyRead;
  if (rest) yield* rest;
}
