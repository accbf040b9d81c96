import { describe, expect, it } from "vitest";
import { encodeGrpcMessage, reencodeGrpcMessage } from "../../src/server/grpc-message.js";

describe("grpc-message encoding", () => {
  it("leaves printable ASCII alone, so decodeURI-based clients (grpc-js) read it verbatim", () => {
    expect(encodeGrpcMessage("count must be between 1 and 1000, got 0")).toBe("count must be between 1 and 1000, got 0");
    expect(encodeGrpcMessage("unknown procedure /a.B/C")).toBe("unknown procedure /a.B/C");
  });

  it("percent-encodes '%' and bytes outside printable ASCII as UTF-8", () => {
    expect(encodeGrpcMessage("100% sure")).toBe("100%25 sure");
    expect(encodeGrpcMessage("line\nbreak")).toBe("line%0Abreak");
    expect(encodeGrpcMessage("Grüße")).toBe("Gr%C3%BC%C3%9Fe");
    expect(decodeURIComponent(encodeGrpcMessage("Grüße, 100%"))).toBe("Grüße, 100%");
  });

  it("re-encodes connect-es's encodeURIComponent output and keeps malformed input as it is", () => {
    expect(reencodeGrpcMessage(encodeURIComponent("a, b/c"))).toBe("a, b/c");
    expect(reencodeGrpcMessage("%E0%A4%A")).toBe("%E0%A4%A");
  });
});
