import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { Language } from "../../gen/demo/v1/common_pb.js";
import {
  GreeterService,
  GreetResponse_MetadataSchema,
  type GreetRequest,
  type GreetStreamRequest,
} from "../../gen/demo/v1/greeter_pb.js";

const MAX_STREAM_COUNT = 1000;
const MAX_INTERVAL_MS = 60_000;

const salutations: Record<Language, string> = {
  [Language.UNSPECIFIED]: "Hello",
  [Language.ENGLISH]: "Hello",
  [Language.FRENCH]: "Bonjour",
  [Language.GERMAN]: "Hallo",
};

/** The demo greeter: a unary call that can fail on bad input, and a server stream. */
export function createGreeterService(): ServiceImpl<typeof GreeterService> {
  const servedBy = hostname();
  return {
    greet(request: GreetRequest) {
      return {
        greeting: greetingFor(request.name, request.language),
        metadata: create(GreetResponse_MetadataSchema, { servedAt: timestampNow(), servedBy }),
      };
    },
    async *greetStream(request: GreetStreamRequest, context: HandlerContext) {
      const greeting = greetingFor(request.name, request.language);
      if (request.count < 1 || request.count > MAX_STREAM_COUNT) {
        throw new ConnectError(`count must be between 1 and ${MAX_STREAM_COUNT}, got ${request.count}`, Code.InvalidArgument);
      }
      if (request.intervalMs > MAX_INTERVAL_MS) {
        throw new ConnectError(`interval_ms must be at most ${MAX_INTERVAL_MS}, got ${request.intervalMs}`, Code.InvalidArgument);
      }
      for (let sequence = 1; sequence <= request.count; sequence++) {
        if (sequence > 1 && request.intervalMs > 0) {
          await sleep(request.intervalMs, undefined, { signal: context.signal }).catch((cause: unknown) => {
            throw ConnectError.from(context.signal.reason ?? cause, Code.Canceled);
          });
        }
        yield { greeting, sequence };
      }
    },
  };
}

function greetingFor(name: string, language: Language): string {
  if (name.trim() === "") {
    throw new ConnectError("name must not be empty", Code.InvalidArgument);
  }
  return `${salutations[language] ?? salutations[Language.UNSPECIFIED]}, ${name}!`;
}
