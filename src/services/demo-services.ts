import type { ConnectRouter } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { createCalculatorService } from "./calculator-service.js";
import { createGreeterService } from "./greeter-service.js";

/** The demo API's services, for health and reflection to list. */
export const demoServices: readonly DescService[] = [GreeterService, CalculatorService];

/** Register the demo API's implementations. */
export function registerDemoServices(router: ConnectRouter): void {
  router.service(GreeterService, createGreeterService());
  router.service(CalculatorService, createCalculatorService());
}
