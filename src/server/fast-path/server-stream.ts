import { Code, ConnectError } from "@connectrpc/connect";
import { create, isMessage, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { asCallError, notifyEnded, notifyReceived, notifySent, notifyStarted, type CallObserver } from "../../interceptors/call-observer.js";
import { envelope } from "../envelope.js";
import type { FastCall, ServerStreamingSpec, UnaryReply } from "./fast-call.js";
import type { ReplyBuilder } from "./replies.js";

/** What a server stream needs from the fast path that runs it. */
export interface ServerStreamDeps {
  observers: readonly CallObserver[];
  replies: ReplyBuilder;
  /** The output message's bytes; throws a ConnectError when it cannot be sent. */
  serialize(call: FastCall, message: MessageShape<DescMessage>): Uint8Array;
  /** Send a one-piece answer (a stream that failed before its first message). */
  deliver(call: FastCall, reply: UnaryReply | Promise<UnaryReply>): void;
}

/**
 * Run a server stream: headers with the first message, each message as the implementation
 * yields it (waiting while the client is not keeping up), then the status in trailers (gRPC),
 * the trailer frame (gRPC-web) or the end-of-stream message (Connect). Observer headers always
 * go in the response headers, as on connect-node's path, where a stream's headers are settled
 * before it runs.
 */
export async function runServerStream(
  call: FastCall,
  spec: ServerStreamingSpec,
  input: MessageShape<DescMessage>,
  deps: ServerStreamDeps,
): Promise<void> {
  const { observers, replies } = deps;
  if (observers.length > 0) {
    notifyStarted(observers, call);
    notifyReceived(observers, call);
  }
  // Created up front: a stream must notice the client leaving even while the implementation waits.
  const signal = call.signal;
  const protocol = call.format.protocol;
  let started = false;
  let failure: unknown;
  let failed = false;
  let iterator: AsyncIterator<unknown> | undefined;
  try {
    iterator = spec.impl(input as never, call)[Symbol.asyncIterator]();
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        iterator = undefined;
        break;
      }
      if (call.isGone()) break;
      const schema = spec.method.output;
      const frame = envelope(0, deps.serialize(call, isMessage(next.value, schema) ? next.value : create(schema, next.value as never)));
      if (!started) {
        started = true;
        call.startResponse(200, replies.responseHeaders(call, null), protocol === "grpc");
      }
      if (observers.length > 0) notifySent(observers, call);
      if (!call.writeBody(frame)) await new Promise<void>((resolve) => call.whenDrained(resolve));
    }
  } catch (cause) {
    failed = true;
    failure = cause;
    iterator = undefined;
  }
  // Stopped early (the client left): let the implementation's finally blocks run.
  if (iterator?.return) await Promise.resolve(iterator.return()).catch(() => undefined);
  call.finish();
  const gone = call.isGone();
  const error = failed
    ? asCallError(failure)
    : gone
      ? asCallError(signal.reason ?? new ConnectError("the client went away", Code.Canceled))
      : undefined;
  if (observers.length > 0) notifyEnded(observers, call, error);
  if (gone) return;
  if (!started) {
    endUnstartedStream(call, error, deps);
  } else if (protocol === "connect") {
    call.writeBody(replies.connectEndStream(call, error));
    call.endResponse(undefined);
  } else if (protocol === "grpc") {
    call.endResponse(replies.grpcTrailers(call, error));
  } else {
    call.writeBody(replies.grpcWebTrailerFrame(call, error));
    call.endResponse(undefined);
  }
}

/** Answer a stream that ends before its first message: refused by the gate, failed, or empty. */
export function endUnstartedStream(call: FastCall, error: ConnectError | undefined, deps: Pick<ServerStreamDeps, "replies" | "deliver">): void {
  if (call.isGone()) return;
  if (call.format.protocol === "connect") {
    // Connect answers a stream with 200 and puts any error in the end-of-stream message.
    call.startResponse(200, deps.replies.responseHeaders(call, null), false);
    call.writeBody(deps.replies.connectEndStream(call, error));
    call.endResponse(undefined);
    return;
  }
  deps.deliver(call, deps.replies.reply(call, undefined, error));
}
