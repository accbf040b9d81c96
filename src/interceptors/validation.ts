import { hasOption, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
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
 * protovalidate's runtime (its CEL interpreter and RE2 engine), loaded on first use: most
 * deployments have no rules, and loading it anyway kept 2.1 MB more in the JS heap (21.2 against
 * 19.0 MB at start), which every full collection marks again.
 */
let protovalidate: Promise<typeof import("@bufbuild/protovalidate")> | undefined;
const loadProtovalidate = () => (protovalidate ??= import("@bufbuild/protovalidate"));

/**
 * protovalidate on request messages: a violation is invalid_argument with the field violations
 * (buf.validate.Violations) in the error details. Methods without rules pass straight through.
 */
export function validationInterceptor(methods: ReadonlySet<DescMethod>, logger: Logger, validator?: Validator): Interceptor {
  const ready = loadProtovalidate().then(
    (module) => ({ validator: validator ?? module.createValidator(), violationsToProto: module.violationsToProto }),
    (error: unknown) => {
      logger.error({ err: error }, "protovalidate could not be loaded");
      throw new ConnectError("internal error", Code.Internal, undefined, undefined, error);
    },
  );
  // A failed load has no caller to reach until a call needs the validator; each such call fails with it.
  ready.catch(() => undefined);
  const check = async (schema: DescMessage, message: never) => {
    const { validator, violationsToProto } = await ready;
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
  return (next) => async (req) => {
    if (!methods.has(req.method)) return next(req);
    if (!req.stream) {
      await check(req.method.input, req.message as never);
      return next(req);
    }
    return next({ ...req, message: validateEach(req.message, req.method.input, check) });
  };
}

async function* validateEach<T>(messages: AsyncIterable<T>, schema: DescMessage, check: (schema: DescMessage, message: never) => Promise<void>): AsyncGenerator<T> {
  for await (const message of messages) {
    await check(schema, message as never);
    yield message;
  }
}
