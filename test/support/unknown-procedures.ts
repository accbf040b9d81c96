import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { BUF } from "./buf-curl.js";
import { runProcess } from "./run-process.js";

/**
 * A schema for procedures the gateway does NOT serve: a whole unknown service, and an unknown
 * method on a served service. Written as .proto text so `buf curl --schema <dir>` can call it,
 * and compiled once by `buf build` so connect-node and grpc-js use the very same descriptors.
 */
export const UNKNOWN_PROTO = `syntax = "proto3";
package demo.v1;

message Probe {
  string name = 1;
}

// Not served by the gateway at all.
service NoSuchService {
  rpc Greet(Probe) returns (Probe);
  rpc GreetStream(Probe) returns (stream Probe);
}

// Same name as the served service, but a method it does not have.
service GreeterService {
  rpc NoSuchMethod(Probe) returns (Probe);
}
`;

export interface UnknownProcedures {
  /** Directory holding demo/v1/unknown.proto, for buf curl --schema. */
  schemaDir: string;
  noSuchService: DescService;
  /** demo.v1.GreeterService as described above: only NoSuchMethod. */
  greeterWithNoSuchMethod: DescService;
  probe: DescMessage;
  cleanup(): Promise<void>;
}

export async function unknownProcedures(): Promise<UnknownProcedures> {
  const schemaDir = await mkdtemp(join(tmpdir(), "gateway-unknown-schema-"));
  await mkdir(join(schemaDir, "demo", "v1"), { recursive: true });
  await writeFile(join(schemaDir, "demo", "v1", "unknown.proto"), UNKNOWN_PROTO);
  const imagePath = join(tmpdir(), `${schemaDir.split("/").pop()}.binpb`);
  const built = await runProcess(BUF, ["build", schemaDir, "--as-file-descriptor-set", "-o", imagePath], {
    timeoutMs: 20_000,
  });
  if (built.exitCode !== 0) throw new Error(`buf build failed: ${built.stderr}`);
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, await readFile(imagePath)));
  await rm(imagePath, { force: true });
  const noSuchService = registry.getService("demo.v1.NoSuchService");
  const greeterWithNoSuchMethod = registry.getService("demo.v1.GreeterService");
  const probe = registry.getMessage("demo.v1.Probe");
  if (!noSuchService || !greeterWithNoSuchMethod || !probe) throw new Error("unknown.proto did not compile as expected");
  return {
    schemaDir,
    noSuchService,
    greeterWithNoSuchMethod,
    probe,
    cleanup: () => rm(schemaDir, { recursive: true, force: true }),
  };
}
