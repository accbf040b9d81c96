/**
 * The Greet call as the floor peers make it (node-http1-json-server.ts, node-http2-grpc-server.ts):
 * the same greeter implementation the gateway and the other peers call, its answer delivered
 * synchronously when the implementation is synchronous, so a floor pays for nothing it would not.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { GreeterService, type GreetRequest, type GreetResponseSchema } from "../../gen/demo/v1/greeter_pb.js";
import { createGreeterService } from "../../src/services/greeter-service.js";

const greetMethod = GreeterService.method.greet;

/** The one path a floor serves. */
export const GREET_PATH = `/${GreeterService.typeName}/${greetMethod.name}`;

const greeter = createGreeterService();

/** Greet reads nothing from its context; it is passed as the grpc-js peer passes it, one per protocol. */
function contextFor(protocolName: "connect" | "grpc"): HandlerContext {
  return {
    service: GreeterService,
    method: greetMethod,
    signal: new AbortController().signal,
    requestMethod: "POST",
    protocolName,
  } as unknown as HandlerContext;
}
const CONTEXTS = { connect: contextFor("connect"), grpc: contextFor("grpc") };

/** Call Greet and hand its answer to `send`, or what it threw or rejected with to `fail`. */
export function greetForFloor(
  protocolName: "connect" | "grpc",
  request: GreetRequest,
  send: (response: MessageInitShape<typeof GreetResponseSchema>) => void,
  fail: (error: unknown) => void,
): void {
  try {
    const result = greeter.greet(request, CONTEXTS[protocolName]);
    // The demo's greet is synchronous; a promise is still honoured should the implementation change.
    if (result instanceof Promise) result.then(send, fail);
    else send(result);
  } catch (error) {
    fail(error);
  }
}
