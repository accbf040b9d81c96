import { randomUUID } from "node:crypto";

/** The request-id header: accepted from the client, generated otherwise, and always returned. */
export const REQUEST_ID_HEADER = "x-request-id";

/** The client's request id if it is sane (1–128 printable ASCII characters), otherwise a new UUID. */
export function requestIdFrom(headers: Headers): string {
  const given = headers.get(REQUEST_ID_HEADER);
  if (given !== null && given.length > 0 && given.length <= 128 && isPrintableAscii(given)) return given;
  return randomUUID();
}

/** The trace id of a W3C traceparent header (`00-<32 hex>-<16 hex>-<2 hex>`), undefined if absent or malformed. */
export function traceIdFrom(headers: Headers): string | undefined {
  const traceparent = headers.get("traceparent");
  if (traceparent === null || traceparent.length < 55 || traceparent.charCodeAt(2) !== 45 || traceparent.charCodeAt(35) !== 45) return undefined;
  return traceparent.slice(3, 35);
}

function isPrintableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
