/** The 24 bytes every HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** What the first bytes of a connection tell us. */
export type PrefaceVerdict = "http2" | "http1" | "undecided";

/**
 * Classify the bytes received so far on a cleartext connection.
 *
 * A short first read must not decide: a prefix of the preface stays "undecided"
 * until either all 24 bytes match or one byte differs.
 */
export function classifyConnectionStart(received: Buffer): PrefaceVerdict {
  const comparable = Math.min(received.length, HTTP2_PREFACE.length);
  for (let i = 0; i < comparable; i++) {
    if (received[i] !== HTTP2_PREFACE[i]) return "http1";
  }
  return comparable === HTTP2_PREFACE.length ? "http2" : "undecided";
}
