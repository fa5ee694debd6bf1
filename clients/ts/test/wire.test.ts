// The codec against the msgtrans family's conformance vectors: every .bin
// decodes to the fields of its .json and those fields encode to the .bin.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Compression, PacketType, ProtocolError, decodePacket, encodePacket, type Packet } from "../src/wire.js";

// build/test/wire.test.js → the repository's testdata/wire-v1.
const fixtures = fileURLToPath(new URL("../../../../testdata/wire-v1/", import.meta.url));

interface Fixture {
  version: number;
  compression: number;
  packet_type: number;
  biz_type: number;
  message_id: number;
  ext_header_hex: string;
  payload_hex: string;
  reserved: number;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

const names = readdirSync(fixtures)
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.slice(0, -".json".length))
  .sort();

test("the conformance vectors are there", () => {
  assert.equal(names.length, 8, `want the 8 vectors in ${fixtures}, found ${names.join(", ")}`);
});

for (const name of names) {
  test(`vector ${name}`, () => {
    const want = JSON.parse(readFileSync(fixtures + name + ".json", "utf8")) as Fixture;
    const bin = new Uint8Array(readFileSync(fixtures + name + ".bin"));
    const p = decodePacket(bin);
    assert.equal(want.version, 1);
    assert.equal(p.compression, want.compression, "compression");
    assert.equal(p.type, want.packet_type, "packet_type");
    assert.equal(p.bizType, want.biz_type, "biz_type");
    assert.equal(p.messageId, want.message_id, "message_id");
    assert.equal(p.flags, want.reserved, "flags");
    assert.equal(hex(p.ext), want.ext_header_hex, "ext header");
    assert.equal(hex(p.payload), want.payload_hex, "payload");
    const fields: Packet = {
      compression: want.compression,
      type: want.packet_type,
      bizType: want.biz_type,
      messageId: want.message_id,
      flags: want.reserved,
      ext: unhex(want.ext_header_hex),
      payload: unhex(want.payload_hex),
    };
    assert.equal(hex(encodePacket(fields)), hex(bin), "encoding");
  });
}

test("the example of docs/wire.md", () => {
  const b = encodePacket({
    compression: Compression.None,
    type: PacketType.OneWay,
    bizType: 5,
    messageId: 42,
    flags: 0,
    ext: new Uint8Array(0),
    payload: new TextEncoder().encode("hello world"),
  });
  assert.equal(hex(b), "01000005" + "0000002a" + "0000" + "0000000b" + "0000" + "68656c6c6f20776f726c64");
});

test("refusals", () => {
  const ok = encodePacket({ compression: 0, type: 0, bizType: 0, messageId: 1, flags: 0, ext: Uint8Array.of(1, 2), payload: Uint8Array.of(3) });
  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ["short", (b) => b.subarray(0, 15), /shorter than its header/],
    ["version 2", (b) => (b[0] = 2, b), /version 2/],
    ["compression 3", (b) => (b[1] = 3, b), /compression 3/],
    ["packet type 3", (b) => (b[2] = 3, b), /packet type 3/],
    ["missing byte", (b) => b.subarray(0, b.length - 1), /its header says 19/],
    ["extra byte", (b) => Uint8Array.of(...b, 0), /its header says 19/],
    ["ext over the limit", (b) => (b[8] = 0x20, b), /ext header of 8194 bytes, over the limit/],
    ["payload over the limit", (b) => (b[10] = 1, b), /payload of 16777217 bytes, over the limit/],
  ];
  for (const [name, mutate, want] of cases) {
    assert.throws(() => decodePacket(mutate(Uint8Array.from(ok))), (err: unknown) => err instanceof ProtocolError && want.test(err.message), name);
  }
});
