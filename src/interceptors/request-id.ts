import { randomUUID } from "node:crypto";
import type { CallObserver } from "./call-observer.js";

/** The request-id header: accepted from the client, generated otherwise, and always returned. */
export const REQUEST_ID_HEADER = "x-request-id";

/** The client's request id if it is sane (1–128 printable ASCII characters), otherwise a new UUID. */
export function requestIdFrom(given: string | null | undefined): string {
  if (given != null && given.length > 0 && given.length <= 128 && isPrintableAscii(given)) return given;
  return randomUUID();
}

/** The trace id of a W3C traceparent header value (`00-<32 hex>-<16 hex>-<2 hex>`), undefined if absent or malformed. */
export function traceIdFrom(traceparent: string | null | undefined): string | undefined {
  if (traceparent == null || traceparent.length < 55 || traceparent.charCodeAt(2) !== 45 || traceparent.charCodeAt(35) !== 45) return undefined;
  return traceparent.slice(3, 35);
}

/** Returns every call's request id (the client's, or a new one) in the response, success or error. */
export function requestIdObserver(): CallObserver {
  return {
    callStarted(call) {
      call.setResponseHeader(REQUEST_ID_HEADER, call.requestId);
    },
  };
}

function isPrintableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
