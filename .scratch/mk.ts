import { create, toBinary } from "@bufbuild/protobuf";
import { GreetStreamRequestSchema } from "../gen/demo/v1/greeter_pb.js";
const b = toBinary(GreetStreamRequestSchema, create(GreetStreamRequestSchema, { name: "Cy", count: 10, intervalMs: 500 }));
const env = Buffer.alloc(5 + b.length); env.writeUInt32BE(b.length, 1); Buffer.from(b).copy(env, 5);
process.stdout.write(env);
