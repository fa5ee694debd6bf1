// The msgtrans wire format v1: a 16-byte fixed header, the ext header, the
// payload; integers big-endian. docs/wire.md in the repository describes it
// byte by byte; the family's conformance vectors (testdata/wire-v1) are the
// judge, and test/wire.test.ts checks this codec against every one of them.

/** The only wire version this codec reads and writes. */
export const VERSION = 1;
/** Length of the fixed header. */
export const HEADER_LEN = 16;

/** Compression of a packet's payload (the ext header is never compressed). */
export const Compression = { None: 0, Zstd: 1, Zlib: 2 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

/** The three packet types of wire v1. */
export const PacketType = { OneWay: 0, Request: 1, Response: 2 } as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/** Flag bits; bits this codec does not know are carried, not interpreted. */
export const Flags = { Fragmented: 1, HighPriority: 2, HasRouteTag: 4 } as const;

/** One packet, decoded. */
export interface Packet {
  compression: number;
  type: number;
  bizType: number;
  messageId: number;
  flags: number;
  ext: Uint8Array;
  payload: Uint8Array;
}

/** Limits checked against a header's lengths before anything is copied. */
export interface Limits {
  /** Largest ext header accepted; default 4 KiB. */
  maxExt: number;
  /** Largest payload on the wire accepted; default 1 MiB. */
  maxPayload: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = { maxExt: 4 << 10, maxPayload: 1 << 20 };

/** A packet that is not wire v1, or breaks a limit. The connection carrying it cannot go on. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(`msgtrans: protocol error: ${message}`);
    this.name = "ProtocolError";
  }
}

/** Returns the bytes of p: header, ext header, payload. */
export function encodePacket(p: Packet): Uint8Array {
  const n = HEADER_LEN + p.ext.length + p.payload.length;
  const out = new Uint8Array(n);
  const v = new DataView(out.buffer);
  if (p.ext.length > 0xffff) throw new RangeError(`msgtrans: ext header of ${p.ext.length} bytes (at most 65535)`);
  out[0] = VERSION;
  out[1] = p.compression;
  out[2] = p.type;
  out[3] = p.bizType;
  v.setUint32(4, p.messageId >>> 0);
  v.setUint16(8, p.ext.length);
  v.setUint32(10, p.payload.length);
  v.setUint16(14, p.flags & 0xffff);
  out.set(p.ext, HEADER_LEN);
  out.set(p.payload, HEADER_LEN + p.ext.length);
  return out;
}

/**
 * Decodes exactly one packet from b (a WebSocket binary message holds one).
 * The ext header and payload are views into b. Throws [ProtocolError] for a
 * version other than 1, an unknown compression or packet type, lengths over
 * the limits, or bytes missing or left over.
 */
export function decodePacket(b: Uint8Array, limits: Limits = DEFAULT_LIMITS): Packet {
  if (b.length < HEADER_LEN) throw new ProtocolError(`packet of ${b.length} bytes, shorter than its header`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] !== VERSION) throw new ProtocolError(`version ${b[0]}`);
  const compression = b[1]!;
  if (compression > Compression.Zlib) throw new ProtocolError(`compression ${compression}`);
  const type = b[2]!;
  if (type > PacketType.Response) throw new ProtocolError(`packet type ${type}`);
  const extLen = v.getUint16(8);
  const payloadLen = v.getUint32(10);
  if (extLen > limits.maxExt) throw new ProtocolError(`ext header of ${extLen} bytes, over the limit of ${limits.maxExt}`);
  if (payloadLen > limits.maxPayload) throw new ProtocolError(`payload of ${payloadLen} bytes, over the limit of ${limits.maxPayload}`);
  if (b.length !== HEADER_LEN + extLen + payloadLen) {
    throw new ProtocolError(`packet of ${b.length} bytes, its header says ${HEADER_LEN + extLen + payloadLen}`);
  }
  return {
    compression,
    type,
    bizType: b[3]!,
    messageId: v.getUint32(4),
    flags: v.getUint16(14),
    ext: b.subarray(HEADER_LEN, HEADER_LEN + extLen),
    payload: b.subarray(HEADER_LEN + extLen),
  };
}
