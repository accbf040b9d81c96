/** The three RPC protocols the gateway speaks. */
export type RpcProtocol = "grpc" | "grpc-web" | "connect";

/** Tell the protocol of a call from its content-type (Connect unary GET has none). */
export function rpcProtocolOf(contentType: string | null | undefined): RpcProtocol {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}
