import type { ConnectRouter } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";

/** Placeholder until reflection lands: registers grpc.reflection.v1 and v1alpha for the given services. */
export function registerReflection(_router: ConnectRouter, _services: readonly DescService[]): DescService[] {
  return [];
}
