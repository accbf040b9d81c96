/** How the fast path speaks one request content-type. */
export interface WireFormat {
  protocol: "grpc" | "grpc-web" | "connect";
  binary: boolean;
  /** Messages carry the 5-byte envelope (gRPC, gRPC-web, Connect streaming; not Connect unary). */
  enveloped: boolean;
  responseContentType: string;
}

/** The request content-types the fast path serves for unary calls (gRPC's also for streams); anything else goes to connect-node. */
export const wireFormats: ReadonlyMap<string, WireFormat> = new Map<string, WireFormat>([
  ["application/grpc", { protocol: "grpc", binary: true, enveloped: true, responseContentType: "application/grpc+proto" }],
  ["application/grpc+proto", { protocol: "grpc", binary: true, enveloped: true, responseContentType: "application/grpc+proto" }],
  ["application/grpc-web", { protocol: "grpc-web", binary: true, enveloped: true, responseContentType: "application/grpc-web+proto" }],
  ["application/grpc-web+proto", { protocol: "grpc-web", binary: true, enveloped: true, responseContentType: "application/grpc-web+proto" }],
  ["application/proto", { protocol: "connect", binary: true, enveloped: false, responseContentType: "application/proto" }],
  ["application/json", { protocol: "connect", binary: false, enveloped: false, responseContentType: "application/json" }],
]);

/** Connect's streaming content-types, which the fast path serves for server streams. */
export const connectStreamFormats: ReadonlyMap<string, WireFormat> = new Map<string, WireFormat>([
  ["application/connect+proto", { protocol: "connect", binary: true, enveloped: true, responseContentType: "application/connect+proto" }],
  ["application/connect+json", { protocol: "connect", binary: false, enveloped: true, responseContentType: "application/connect+json" }],
]);
