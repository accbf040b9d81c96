import { describe, expect, it } from "vitest";
import { classifyConnectionStart, HTTP2_PREFACE } from "../../src/server/http2-preface.js";

describe("classifyConnectionStart", () => {
  it("recognises the complete HTTP/2 preface, also with a frame behind it", () => {
    expect(classifyConnectionStart(HTTP2_PREFACE)).toBe("http2");
    expect(classifyConnectionStart(Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4])]))).toBe("http2");
  });

  it("stays undecided on every proper prefix of the preface", () => {
    for (let length = 0; length < HTTP2_PREFACE.length; length++) {
      expect(classifyConnectionStart(HTTP2_PREFACE.subarray(0, length))).toBe("undecided");
    }
  });

  it("decides HTTP/1.1 as soon as one byte differs", () => {
    expect(classifyConnectionStart(Buffer.from("GET / HTTP/1.1\r\n"))).toBe("http1");
    expect(classifyConnectionStart(Buffer.from("POST"))).toBe("http1");
    // "PRI" followed by something else is not HTTP/2.
    expect(classifyConnectionStart(Buffer.from("PRI * HTTP/1.1\r\n"))).toBe("http1");
  });
});
