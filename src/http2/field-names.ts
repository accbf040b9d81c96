/** What HTTP/2 allows as a field name: lower-case token characters only (RFC 9113 §8.2.1, RFC 9110 §5.1). */
export const LOWER_CASE_FIELD_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

/** The connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); te is allowed as "trailers" only. */
export const CONNECTION_SPECIFIC_FIELDS: readonly string[] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];
