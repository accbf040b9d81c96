import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../ops/logger.js";
import { rpcProtocolOf } from "./rpc-protocol.js";

/** snake_case code names as the Connect protocol spells them ("invalid_argument"), computed once. */
const codeNames = new Map<Code, string>(
  Object.values(Code)
    .filter((value): value is Code => typeof value === "number")
    .map((code) => [code, Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()]),
);

/** One structured log line per call: method, protocol, status code and duration. */
export function accessLogInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const startedAt = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    const protocol = rpcProtocolOf(req.header.get("content-type"));
    const write = (error: unknown) => {
      const code = error === undefined ? "ok" : codeNames.get(ConnectError.from(error).code);
      const durationMs = Math.round((performance.now() - startedAt) * 1000) / 1000;
      logger.info({ method, protocol, httpMethod: req.requestMethod, code, durationMs }, "rpc");
    };
    let res;
    try {
      res = await next(req);
    } catch (error) {
      write(error);
      throw error;
    }
    if (!res.stream) {
      write(undefined);
      return res;
    }
    return { ...res, message: logWhenDone(res.message, write) };
  };
}

async function* logWhenDone<T>(messages: AsyncIterable<T>, write: (error: unknown) => void): AsyncGenerator<T> {
  // Stays "canceled" when the consumer stops early (the client went away).
  let outcome: unknown = new ConnectError("stream abandoned", Code.Canceled);
  try {
    yield* messages;
    outcome = undefined;
  } catch (error) {
    outcome = error;
    throw error;
  } finally {
    write(outcome);
  }
}
