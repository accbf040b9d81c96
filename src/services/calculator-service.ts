import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  CalculatorService,
  type AccumulateRequest,
  type DivideRequest,
  type SumRequest,
} from "../../gen/demo/v1/calculator_pb.js";

/** The demo calculator: an input that can be invalid, a client stream and a bidirectional stream. */
export function createCalculatorService(): ServiceImpl<typeof CalculatorService> {
  return {
    divide(request: DivideRequest) {
      if (request.divisor === 0) {
        throw new ConnectError("cannot divide by zero", Code.InvalidArgument);
      }
      return { quotient: request.dividend / request.divisor };
    },
    async sum(requests: AsyncIterable<SumRequest>) {
      let sum = 0n;
      let count = 0;
      for await (const request of requests) {
        sum += request.number;
        count++;
      }
      return { sum, count };
    },
    async *accumulate(requests: AsyncIterable<AccumulateRequest>) {
      let total = 0n;
      for await (const request of requests) {
        total += request.number;
        yield { total };
      }
    },
  };
}
