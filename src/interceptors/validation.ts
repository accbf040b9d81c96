import { hasOption, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createValidator, violationsToProto, type Validator } from "@bufbuild/protovalidate";
import { field as fieldRules, message as messageRules, oneof as oneofRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { Logger } from "../ops/logger.js";

/** Whether a message (or any message it contains) carries buf.validate rules. */
export function hasValidationRules(message: DescMessage, seen = new Set<DescMessage>()): boolean {
  if (seen.has(message)) return false;
  seen.add(message);
  if (hasOption(message, messageRules)) return true;
  for (const oneof of message.oneofs) if (hasOption(oneof, oneofRules)) return true;
  for (const field of message.fields) {
    if (hasOption(field, fieldRules)) return true;
    if (field.message !== undefined && hasValidationRules(field.message, seen)) return true;
  }
  return false;
}

/** Every method whose request message has buf.validate rules; none means the interceptor is left out. */
export function methodsWithRules(services: readonly DescService[]): Set<DescMethod> {
  const found = new Set<DescMethod>();
  for (const service of services) for (const method of service.methods) if (hasValidationRules(method.input)) found.add(method);
  return found;
}

/**
 * protovalidate on request messages: a violation is invalid_argument with the field violations
 * (buf.validate.Violations) in the error details. Methods without rules pass straight through.
 */
export function validationInterceptor(methods: ReadonlySet<DescMethod>, logger: Logger, validator: Validator = createValidator()): Interceptor {
  const check = (schema: DescMessage, message: never) => {
    const result = validator.validate(schema, message);
    if (result.kind === "valid") return;
    if (result.kind === "invalid") {
      const [violations, desc] = violationsToProto(result.violations);
      throw new ConnectError(result.error.message, Code.InvalidArgument, undefined, [{ desc, value: violations }]);
    }
    // A broken rule in the proto is the server's fault; its text stays in the log.
    logger.error({ err: result.error, message: schema.typeName }, "protovalidate rule failed to compile or evaluate");
    throw new ConnectError("internal error", Code.Internal);
  };
  return (next) => (req) => {
    if (!methods.has(req.method)) return next(req);
    if (!req.stream) {
      check(req.method.input, req.message as never);
      return next(req);
    }
    return next({ ...req, message: validateEach(req.message, req.method.input, check) });
  };
}

async function* validateEach<T>(messages: AsyncIterable<T>, schema: DescMessage, check: (schema: DescMessage, message: never) => void): AsyncGenerator<T> {
  for await (const message of messages) {
    check(schema, message as never);
    yield message;
  }
}
