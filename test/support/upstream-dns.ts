import * as dgram from "node:dgram";
import { isIP } from "node:net";

/**
 * A tiny authoritative DNS server on loopback (UDP) for discovery tests: it answers A and AAAA
 * queries from a table the test changes while the gateway runs, with TTL 0, like a Kubernetes
 * headless Service whose pods come and go.
 */
export class TestDnsServer {
  private readonly socket = dgram.createSocket("udp4");
  private readonly records = new Map<string, string[]>();
  /** Queries answered, by name. */
  readonly queries = new Map<string, number>();
  port = 0;

  /** Set every address `name` resolves to (IPv4 and IPv6 mixed); an empty list answers NOERROR with no records. */
  set(name: string, addresses: string[]): void {
    this.records.set(name.toLowerCase().replace(/\.$/, ""), addresses);
  }

  async start(): Promise<this> {
    this.socket.on("message", (query, remote) => {
      const answer = this.answer(query);
      if (answer) this.socket.send(answer, remote.port, remote.address);
    });
    await new Promise<void>((resolve) => this.socket.bind(0, "127.0.0.1", resolve));
    this.port = this.socket.address().port;
    return this;
  }

  /** `127.0.0.1:port`, for the route's `dns.servers`. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private answer(query: Buffer): Buffer | undefined {
    if (query.length < 12) return undefined;
    const id = query.readUInt16BE(0);
    // Question: labels, then QTYPE and QCLASS.
    const labels: string[] = [];
    let offset = 12;
    while (offset < query.length && query[offset] !== 0) {
      const length = query[offset];
      labels.push(query.subarray(offset + 1, offset + 1 + length).toString("ascii"));
      offset += 1 + length;
    }
    const questionEnd = offset + 5;
    if (questionEnd > query.length) return undefined;
    const qtype = query.readUInt16BE(offset + 1);
    const name = labels.join(".").toLowerCase();
    this.queries.set(name, (this.queries.get(name) ?? 0) + 1);
    const known = this.records.get(name);
    const wantedFamily = qtype === 1 ? 4 : qtype === 28 ? 6 : 0;
    const addresses = (known ?? []).filter((a) => isIP(a) === wantedFamily);
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    // QR=1, opcode 0, AA=1, RD copied, RA=1; RCODE 3 (NXDOMAIN) for unknown names.
    header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | (known === undefined ? 3 : 0), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(addresses.length, 6);
    const question = query.subarray(12, questionEnd);
    const answers = addresses.map((address) => {
      const data = wantedFamily === 4 ? Buffer.from(address.split(".").map(Number)) : ipv6Bytes(address);
      const record = Buffer.alloc(12);
      record.writeUInt16BE(0xc00c, 0); // pointer to the name in the question
      record.writeUInt16BE(qtype, 2);
      record.writeUInt16BE(1, 4); // class IN
      record.writeUInt32BE(0, 6); // TTL 0: never cache
      record.writeUInt16BE(data.length, 10);
      return Buffer.concat([record, data]);
    });
    return Buffer.concat([header, question, ...answers]);
  }
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split("::");
  const parse = (part: string | undefined) => (part ? part.split(":").map((h) => parseInt(h, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  const groups = tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}
