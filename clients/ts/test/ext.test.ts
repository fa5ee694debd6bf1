// The typed layer's ext header, against the byte examples of docs/wire.md.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Control, encodeExt, parseExt } from "../src/ext.js";
import { ProtocolError } from "../src/wire.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s.replace(/ /g, ""), "hex"));

test("examples of docs/wire.md", () => {
  const cases: [string, Parameters<typeof encodeExt>[0], string][] = [
    ["hello", { route: 0, control: Control.Hello }, "01 81 04 00 00 00 00 82 01 01"],
    ["typed call", { route: 0xec4ce76d, timeoutMs: 300 }, "01 81 04 ec 4c e7 6d 05 02 ac 02"],
    ["error response", { code: 5, message: "no such room" }, "01 03 01 05 04 0c" + hex(new TextEncoder().encode("no such room"))],
    ["stream credit", { stream: { op: 3, fromAcceptor: false, id: 2 }, credit: 2 }, "01 88 06 03 00 00 00 00 02 09 01 02"],
    ["credentials", { route: 0, control: Control.Hello, credentials: Uint8Array.of(7, 8) }, "01 81 04 00 00 00 00 82 01 01 06 02 07 08"],
  ];
  for (const [name, ext, want] of cases) {
    assert.equal(hex(encodeExt(ext)), want.replace(/ /g, ""), name);
    const back = parseExt(unhex(want));
    for (const [k, v] of Object.entries(ext)) assert.deepEqual((back as Record<string, unknown>)[k], v, `${name}: ${k}`);
  }
});

test("fields past the known ones", () => {
  // 0x0a is a non-critical field this runtime does not know: skipped.
  assert.deepEqual(parseExt(unhex("01 0a 02 ff ff 81 04 00 00 00 07")), { route: 7 });
  // 0x8a is critical: sound, but not understood.
  assert.equal(parseExt(unhex("01 8a 00 81 04 00 00 00 07")).notUnderstood, "unknown critical ext field 0x8a");
  assert.equal(parseExt(unhex("01 88 06 05 00 00 00 00 01")).notUnderstood, "unknown stream op 5");
  // A long varint length is a length all the same.
  assert.equal(parseExt(unhex("01 04 82 00" + "61".repeat(2))).message, "aa");
});

test("malformed ext headers", () => {
  const cases: [string, string, RegExp][] = [
    ["empty", "", /not layout version 1/],
    ["version 2", "02", /not layout version 1/],
    ["length past the end", "01 04 05 61", /bad length/],
    ["route of 3 bytes", "01 81 03 00 00 00", /ext route of 3 bytes/],
    ["control of 2 bytes", "01 82 02 01 01", /ext control of 2 bytes/],
    ["code not one varint", "01 03 02 01 01", /bad varint/],
    ["code over 32 bits", "01 03 05 ff ff ff ff 7f", /bad varint/],
    ["stream of 5 bytes", "01 88 05 01 00 00 00 00", /stream field of 5 bytes/],
    ["length varint unterminated", "01 04 ff", /bad length/],
  ];
  for (const [name, bytes, want] of cases) {
    assert.throws(() => parseExt(unhex(bytes)), (err: unknown) => err instanceof ProtocolError && want.test(err.message), name);
  }
});

test("varints up to 32 bits round-trip", () => {
  for (const v of [1, 127, 128, 300, 16383, 16384, 0xffffffff]) {
    assert.equal(parseExt(encodeExt({ timeoutMs: v })).timeoutMs, v);
  }
});
