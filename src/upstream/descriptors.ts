import { readFile } from "node:fs/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { create, createFileRegistry, fromBinary, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Services every gateway serves itself; a route never takes them over. */
export const GATEWAY_OWNED_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/**
 * How well a route's `match` fits a service name: -1 for no match, the prefix length for a
 * package prefix (`pkg.*`), and more than any prefix for the exact name.
 */
export function matchSpecificity(match: string, serviceName: string): number {
  if (match.endsWith(".*")) {
    const prefix = match.slice(0, -1);
    return serviceName.startsWith(prefix) ? prefix.length : -1;
  }
  return match === serviceName ? Number.MAX_SAFE_INTEGER : -1;
}

/** Read Buf images (binary FileDescriptorSets, `buf build -o image.binpb`) into one registry. */
export async function loadImages(paths: readonly string[]): Promise<FileRegistry> {
  const files = new Map<string, FileDescriptorProto>();
  for (const path of paths) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (cause) {
      throw new ConnectError(`upstreams.images: cannot read ${path}`, Code.FailedPrecondition, undefined, undefined, cause);
    }
    let set;
    try {
      set = fromBinary(FileDescriptorSetSchema, bytes);
    } catch (cause) {
      throw new ConnectError(`upstreams.images: ${path} is not a binary FileDescriptorSet (buf build -o image.binpb)`, Code.FailedPrecondition, undefined, undefined, cause);
    }
    // Images commonly share imports (google/protobuf/*.proto): the first copy of a file wins.
    for (const file of set.file) if (!files.has(file.name)) files.set(file.name, file);
  }
  return registryOf([...files.values()], paths.join(", "));
}

function registryOf(files: FileDescriptorProto[], source: string): FileRegistry {
  try {
    return createFileRegistry(create(FileDescriptorSetSchema, { file: files }));
  } catch (cause) {
    throw new ConnectError(
      `descriptors from ${source} are incomplete or invalid (an image needs its imports: do not build it with --exclude-imports)`,
      Code.FailedPrecondition,
      undefined,
      undefined,
      cause,
    );
  }
}

type ReflectionClient = ReturnType<typeof createClient<typeof reflectionV1.ServerReflection>>;
type ReflectionRequestInit = NonNullable<Parameters<typeof create<typeof reflectionV1.ServerReflectionRequestSchema>>[1]>;

/**
 * Ask an upstream's server reflection (grpc.reflection.v1, falling back to v1alpha) for the
 * services `wanted` accepts and every file they need; returns a registry of them and the names.
 */
export async function fetchByReflection(
  transport: Transport,
  wanted: (serviceName: string) => boolean,
  timeoutMs: number,
  source: string,
): Promise<{ registry: FileRegistry; serviceNames: string[] }> {
  let client = createClient(reflectionV1.ServerReflection, transport) as ReflectionClient;
  let listed: reflectionV1.ServerReflectionResponse[];
  try {
    listed = await ask(client, [{ messageRequest: { case: "listServices", value: "" } }], timeoutMs);
  } catch (error) {
    if (ConnectError.from(error).code !== Code.Unimplemented) throw error;
    client = createClient(reflectionV1alpha.ServerReflection, transport) as unknown as ReflectionClient;
    listed = await ask(client, [{ messageRequest: { case: "listServices", value: "" } }], timeoutMs);
  }
  const all = listed.flatMap((r) => (r.messageResponse.case === "listServicesResponse" ? r.messageResponse.value.service.map((s) => s.name) : []));
  const serviceNames = all.filter((name) => wanted(name) && !GATEWAY_OWNED_SERVICES.has(name));
  const files = new Map<string, FileDescriptorProto>();
  let requests: ReflectionRequestInit[] = serviceNames.map((name) => ({ messageRequest: { case: "fileContainingSymbol", value: name } }));
  // Servers may leave out files they consider known; ask for missing imports until none is left.
  for (let round = 0; requests.length > 0 && round < 32; round++) {
    for (const response of await ask(client, requests, timeoutMs)) {
      const answer = response.messageResponse;
      if (answer.case === "errorResponse") {
        throw new ConnectError(`reflection on ${source}: ${answer.value.errorMessage}`, Code.FailedPrecondition);
      }
      if (answer.case !== "fileDescriptorResponse") continue;
      for (const bytes of answer.value.fileDescriptorProto) {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        if (!files.has(file.name)) files.set(file.name, file);
      }
    }
    const missing = new Set<string>();
    for (const file of files.values()) for (const dependency of file.dependency) if (!files.has(dependency)) missing.add(dependency);
    requests = [...missing].map((name) => ({ messageRequest: { case: "fileByFilename", value: name } }));
  }
  return { registry: registryOf([...files.values()], `reflection on ${source}`), serviceNames };
}

async function ask(client: ReflectionClient, requests: ReflectionRequestInit[], timeoutMs: number): Promise<reflectionV1.ServerReflectionResponse[]> {
  const responses: reflectionV1.ServerReflectionResponse[] = [];
  async function* send() {
    yield* requests;
  }
  for await (const response of client.serverReflectionInfo(send(), { timeoutMs })) responses.push(response);
  return responses;
}
