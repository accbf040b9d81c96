import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { CalculatorService } from "../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../gen/demo/v1/greeter_pb.js";
const baseUrl = "http://127.0.0.1:18080";
const transports = {
  connect11: createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  connect2: createConnectTransport({ baseUrl, httpVersion: "2" }),
  connect11json: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  grpc: createGrpcTransport({ baseUrl }),
  grpcweb11: createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  grpcweb2: createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
};
async function* nums(ns: number[], delay = 0) { for (const n of ns) { if (delay) await new Promise(r => setTimeout(r, delay)); yield { number: BigInt(n) }; } }
for (const [name, t] of Object.entries(transports)) {
  const g = createClient(GreeterService, t); const c = createClient(CalculatorService, t);
  try {
    const r = await g.greet({ name: "A" });
    const s = []; for await (const m of g.greetStream({ name: "B", count: 3 })) s.push(m.sequence);
    const sum = await c.sum(nums([1, 2, 3]));
    let bidi: string;
    try {
      const out = []; const start = Date.now();
      const ac = AbortSignal.timeout(3000);
      for await (const m of c.accumulate(nums([1, 2, 3], 50), { signal: ac })) out.push(m.total);
      bidi = out.join(",") + ` in ${Date.now() - start}ms`;
    } catch (e) { bidi = "ERR " + ConnectError.from(e).message; }
    console.log(name, r.greeting, s, sum.sum, sum.count, "bidi:", bidi);
  } catch (e) { console.log(name, "ERR", e); }
}
