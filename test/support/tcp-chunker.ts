import * as net from "node:net";

/**
 * A loopback TCP relay that forwards the client's first `splitBytes` bytes one byte at a time
 * with a pause between them, then relays everything else unchanged. It makes a real client's
 * connection start arrive at the server in many small reads.
 */
export async function startChunkingRelay(
  targetPort: number,
  splitBytes = 30,
  pauseMs = 5,
): Promise<{ port: number; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(targetPort, "127.0.0.1");
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    let forwarded = 0;
    let chain = Promise.resolve();
    client.on("data", (chunk: Buffer) => {
      client.pause();
      chain = chain.then(async () => {
        for (let i = 0; i < chunk.length; i++) {
          if (forwarded >= splitBytes) {
            upstream.write(chunk.subarray(i));
            forwarded += chunk.length - i;
            break;
          }
          upstream.write(chunk.subarray(i, i + 1));
          forwarded++;
          await new Promise((resolve) => setTimeout(resolve, pauseMs));
        }
        client.resume();
      });
    });
    upstream.pipe(client);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", closeBoth).on("error", closeBoth);
    upstream.on("close", closeBoth).on("error", closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => accepted,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
