import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Pass a response stream through, calling `onMessage` per message and `onEnd` once with how it
 * ended: undefined when complete, the error when it failed, and "canceled" when the consumer
 * stopped early (the client went away).
 */
export async function* observeStream<T>(
  messages: AsyncIterable<T>,
  onEnd: (error: unknown) => void,
  onMessage?: () => void,
): AsyncGenerator<T> {
  let outcome: unknown = new ConnectError("stream abandoned", Code.Canceled);
  try {
    if (onMessage === undefined) {
      yield* messages;
    } else {
      for await (const message of messages) {
        onMessage();
        yield message;
      }
    }
    outcome = undefined;
  } catch (error) {
    outcome = error;
    throw error;
  } finally {
    onEnd(outcome);
  }
}
