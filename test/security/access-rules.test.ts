import { describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { CalculatorService } from "../../gen/demo/v1/calculator_pb.js";
import { GreeterService } from "../../gen/demo/v1/greeter_pb.js";
import { AccessRules } from "../../src/security/access-rules.js";

const greet = GreeterService.method.greet;
const greetStream = GreeterService.method.greetStream;
const divide = CalculatorService.method.divide;
const check = Health.method.check;

describe("access rules", () => {
  it("the most specific rule wins: method, then service, then the longest package prefix, then *", () => {
    const rules = new AccessRules({
      publicHealth: false,
      defaultAccess: "authenticated",
      rules: [
        { match: "*", access: "public" },
        { match: "demo.*", scopes: ["demo"] },
        { match: "demo.v1.*", scopes: ["v1"] },
        { match: "demo.v1.GreeterService", access: "authenticated" },
        { match: "demo.v1.GreeterService/Greet", access: "public" },
      ],
    });
    expect(rules.requirementFor(greet)).toEqual({ kind: "public" });
    expect(rules.requirementFor(greetStream)).toEqual({ kind: "authenticated", scopes: [] });
    expect(rules.requirementFor(divide)).toEqual({ kind: "authenticated", scopes: ["v1"] });
    expect(rules.requirementFor(check)).toEqual({ kind: "public" });
  });

  it("without a matching rule the default applies; health is public unless a rule says otherwise", () => {
    const open = new AccessRules({ publicHealth: true, defaultAccess: "authenticated", rules: [] });
    expect(open.requirementFor(greet)).toEqual({ kind: "authenticated", scopes: [] });
    expect(open.requirementFor(check)).toEqual({ kind: "public" });
    const closed = new AccessRules({ publicHealth: true, defaultAccess: "public", rules: [{ match: "grpc.health.v1.Health", scopes: ["ops"] }] });
    expect(closed.requirementFor(check)).toEqual({ kind: "authenticated", scopes: ["ops"] });
    expect(closed.requirementFor(greet)).toEqual({ kind: "public" });
  });
});

describe("access rule config", () => {
  it("accepts the documented patterns and rejects others at start-up", async () => {
    const { parseConfig } = await import("../../src/config/load-config.js");
    for (const match of ["*", "demo.*", "demo.v1.*", "demo.v1.GreeterService", "demo.v1.GreeterService/*", "demo.v1.GreeterService/Greet"]) {
      expect(() => parseConfig({ security: { rules: [{ match, access: "public" }] } }), match).not.toThrow();
    }
    for (const match of ["demo.v1.Greeter*", "/demo.v1.GreeterService/Greet", "demo.v1.GreeterService/Gr*", ""]) {
      expect(() => parseConfig({ security: { rules: [{ match, access: "public" }] } }), match).toThrow(/security\.rules\.0\.match/);
    }
    expect(() => parseConfig({ security: { rules: [{ match: "*", access: "public", scopes: ["a"] }] } })).toThrow(/exactly one of access or scopes/);
  });
});
