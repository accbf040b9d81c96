/**
 * How the benchmark's plain-Node servers start and stop: listen on 127.0.0.1, tell the runner
 * the port ("READY <port>", which bench/servers/registry.ts waits for), exit at once on SIGTERM
 * (they hold nothing worth draining) and with a message if the port cannot be had.
 */
import type { Server } from "node:net";

/** Listens on 127.0.0.1:`port` (0: any free port), prints "READY <port>", and exits on SIGTERM or a listen error. */
export function listenOnLoopback(server: Server, port: number, name: string): void {
  server.once("error", (error: Error) => {
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(1);
  });
  server.listen(port, "127.0.0.1", () => {
    const address = server.address();
    process.stdout.write(`READY ${typeof address === "object" && address !== null ? address.port : port}\n`);
  });
  process.on("SIGTERM", () => process.exit(0));
}
