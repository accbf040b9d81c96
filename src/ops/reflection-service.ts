import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { create, type DescFile, type DescService } from "@bufbuild/protobuf";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DescriptorIndex, dependencyClosure } from "./descriptor-index.js";

type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** The message_response oneof, in a shape that initialises both the v1 and the v1alpha response. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Register grpc.reflection.v1 and v1alpha ServerReflection for `services`; returns the two reflection services. */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): DescService[] {
  // The caller appends the reflection services to `services` after this returns, and they must be
  // listed too: build the index on the first request, when the list is complete.
  let index: DescriptorIndex | undefined;
  const getIndex = () => (index ??= new DescriptorIndex(services));

  router.service(v1.ServerReflection, {
    serverReflectionInfo: (requests) =>
      answerEach(requests, getIndex(), (request, answer) =>
        create(v1.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer,
        }),
      ),
  });
  router.service(v1alpha.ServerReflection, {
    serverReflectionInfo: (requests) =>
      answerEach(requests, getIndex(), (request, answer) =>
        create(v1alpha.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer,
        }),
      ),
  });
  return [v1.ServerReflection, v1alpha.ServerReflection];
}

/** Answer each request of one reflection stream as it arrives. */
async function* answerEach<Req extends ReflectionRequest, Res>(
  requests: AsyncIterable<Req>,
  index: DescriptorIndex,
  respond: (request: Req, answer: ReflectionAnswer) => Res,
): AsyncGenerator<Res> {
  const session = new ReflectionSession(index);
  for await (const request of requests) yield respond(request, session.answer(request));
}

/** One stream's state: the files already sent, which the spec lets us leave out of later answers. */
class ReflectionSession {
  private readonly sent = new Set<string>();

  constructor(private readonly index: DescriptorIndex) {}

  answer(request: ReflectionRequest): ReflectionAnswer {
    try {
      return this.lookUp(request);
    } catch (error) {
      // A failed lookup is an answer on the stream, which stays open for the client's next question.
      if (!(error instanceof ConnectError)) throw error;
      return { case: "errorResponse", value: { errorCode: error.code, errorMessage: error.rawMessage } };
    }
  }

  private lookUp({ messageRequest: ask }: ReflectionRequest): ReflectionAnswer {
    const index = this.index;
    switch (ask.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename":
        return this.files(index.fileByName(ask.value) ?? notFound(`file ${JSON.stringify(ask.value)}`));
      case "fileContainingSymbol":
        return this.files(index.fileBySymbol(ask.value) ?? notFound(`symbol ${JSON.stringify(ask.value)}`));
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = ask.value;
        const file = index.fileByExtension(containingType, extensionNumber);
        return this.files(file ?? notFound(`extension ${extensionNumber} of ${JSON.stringify(containingType)}`));
      }
      case "allExtensionNumbersOfType": {
        const numbers = index.extensionNumbers(ask.value) ?? notFound(`message type ${JSON.stringify(ask.value)}`);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: ask.value, extensionNumber: numbers } };
      }
      default:
        throw new ConnectError("the request sets no known message_request", Code.InvalidArgument);
    }
  }

  /** `file` (always, even if sent before) followed by those of its dependencies this stream has not seen yet. */
  private files(file: DescFile): ReflectionAnswer {
    const fileDescriptorProto: Uint8Array[] = [];
    for (const each of dependencyClosure(file)) {
      const name = each.proto.name;
      if (each !== file && this.sent.has(name)) continue;
      this.sent.add(name);
      fileDescriptorProto.push(this.index.encode(each));
    }
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
  }
}

function notFound(what: string): never {
  throw new ConnectError(`${what} not found`, Code.NotFound);
}
