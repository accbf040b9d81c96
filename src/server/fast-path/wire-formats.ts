/** How the fast path speaks one request content-type. */
export interface WireFormat {
  protocol: "grpc" | "grpc-web" | "connect";
  binary: boolean;
  responseContentType: string;
}

/** The request content-types the fast path serves; anything else goes to connect-node. */
export const wireFormats: ReadonlyMap<string, WireFormat> = new Map<string, WireFormat>([
  ["application/grpc", { protocol: "grpc", binary: true, responseContentType: "application/grpc+proto" }],
  ["application/grpc+proto", { protocol: "grpc", binary: true, responseContentType: "application/grpc+proto" }],
  ["application/grpc-web", { protocol: "grpc-web", binary: true, responseContentType: "application/grpc-web+proto" }],
  ["application/grpc-web+proto", { protocol: "grpc-web", binary: true, responseContentType: "application/grpc-web+proto" }],
  ["application/proto", { protocol: "connect", binary: true, responseContentType: "application/proto" }],
  ["application/json", { protocol: "connect", binary: false, responseContentType: "application/json" }],
]);
