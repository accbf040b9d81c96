const NEEDS_NO_ENCODING = /^[\x20-\x24\x26-\x7e]*$/;

/**
 * Percent-encode a grpc-message value the way the gRPC spec asks: only "%" and bytes outside
 * printable ASCII. connect-es uses encodeURIComponent, which grpc-js decodes with decodeURI,
 * so "," or "/" in a message would reach grpc-js users as "%2C" or "%2F".
 */
export function encodeGrpcMessage(text: string): string {
  if (NEEDS_NO_ENCODING.test(text)) return text;
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(byte);
  }
  return out;
}

/** Re-encode a grpc-message that connect-es encoded with encodeURIComponent. */
export function reencodeGrpcMessage(encoded: string): string {
  try {
    return encodeGrpcMessage(decodeURIComponent(encoded));
  } catch {
    return encoded;
  }
}

/** Fix the grpc-message entry of a trailers object in place, if it has one. */
export function fixGrpcMessageTrailer(trailers: Record<string, unknown>): void {
  const message = trailers["grpc-message"];
  if (typeof message === "string") trailers["grpc-message"] = reencodeGrpcMessage(message);
}
