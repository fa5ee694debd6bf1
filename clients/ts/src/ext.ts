// The ext header of msgtrans-go's typed layer (docs/wire.md, "The ext
// header of msgtrans-go"): a version byte 0x01, then fields of a tag byte, a
// LEB128 length and that many bytes. Tags with the high bit set are critical:
// a receiver that does not know one refuses the packet.

import { Flags, type Packet, ProtocolError } from "./wire.js";

export const EXT_VERSION = 1;
/** Route 0 carries the runtime's own control packets. */
export const CONTROL_ROUTE = 0;

const CRITICAL = 0x80;
const TAG_ROUTE = 0x81;
const TAG_CONTROL = 0x82;
const TAG_CODE = 0x03;
const TAG_MESSAGE = 0x04;
const TAG_TIMEOUT = 0x05;
const TAG_CREDENTIALS = 0x06;
const TAG_RETRY_AFTER = 0x07;
const TAG_STREAM = 0x88;
const TAG_CREDIT = 0x09;

/** The kinds of control packet. */
export const Control = { Hello: 1, Ping: 2, Pong: 3, GoAway: 4 } as const;

/** The ops of a stream field (docs/wire.md, "Streams"). */
export const StreamOp = { Message: 1, HalfClose: 2, Credit: 3, Cancel: 4 } as const;

/** A stream field: which stream a OneWay frame belongs to, and what it does. */
export interface StreamField {
  op: number;
  fromAcceptor: boolean;
  id: number;
}

/** A parsed ext header. Absent fields are undefined (code: 0 means OK). */
export interface Ext {
  route?: number;
  control?: number;
  code?: number;
  message?: string;
  timeoutMs?: number;
  credentials?: Uint8Array;
  retryAfterMs?: number;
  stream?: StreamField;
  credit?: number;
  /**
   * Set when the header is sound but holds a critical field this runtime does
   * not know (or a stream op it does not know): the packet is not understood.
   */
  notUnderstood?: string;
}

/** Reports whether p carries an ext header in the typed layout. */
export function isTypedExt(p: Packet): boolean {
  return (p.flags & Flags.HasRouteTag) !== 0 && p.ext.length > 0 && p.ext[0] === EXT_VERSION;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function pushVarint(out: number[], x: number): void {
  while (x >= 0x80) {
    out.push((x & 0x7f) | 0x80);
    x = Math.floor(x / 128);
  }
  out.push(x);
}

function pushVarintField(out: number[], tag: number, x: number): void {
  const v: number[] = [];
  pushVarint(v, x);
  out.push(tag, v.length, ...v);
}

function pushBytesField(out: number[], tag: number, b: Uint8Array): void {
  out.push(tag);
  pushVarint(out, b.length);
  for (const x of b) out.push(x);
}

/** Encodes e, in the order msgtrans-go writes its fields. */
export function encodeExt(e: Ext): Uint8Array {
  const out: number[] = [EXT_VERSION];
  if (e.route !== undefined) {
    const r = e.route >>> 0;
    out.push(TAG_ROUTE, 4, r >>> 24, (r >>> 16) & 0xff, (r >>> 8) & 0xff, r & 0xff);
  }
  if (e.control) out.push(TAG_CONTROL, 1, e.control);
  if (e.code) pushVarintField(out, TAG_CODE, e.code);
  if (e.message) pushBytesField(out, TAG_MESSAGE, utf8.encode(e.message));
  if (e.timeoutMs) pushVarintField(out, TAG_TIMEOUT, e.timeoutMs);
  if (e.credentials) pushBytesField(out, TAG_CREDENTIALS, e.credentials);
  if (e.retryAfterMs) pushVarintField(out, TAG_RETRY_AFTER, e.retryAfterMs);
  if (e.stream) {
    const id = e.stream.id >>> 0;
    out.push(TAG_STREAM, 6, e.stream.op, e.stream.fromAcceptor ? 1 : 0, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff);
  }
  if (e.credit) pushVarintField(out, TAG_CREDIT, e.credit);
  return Uint8Array.from(out);
}

/** Reads a LEB128 varint at b[i]; returns [value, bytes read], bytes read 0 when malformed. */
function readVarint(b: Uint8Array, i: number): [number, number] {
  let x = 0;
  let scale = 1;
  for (let k = 0; k < 10 && i + k < b.length; k++) {
    const c = b[i + k]!;
    x += (c & 0x7f) * scale;
    if (c < 0x80) return [x, k + 1];
    scale *= 128;
  }
  return [0, 0];
}

/** A field value that must be exactly one varint of at most 32 bits. */
function fieldVarint(tag: number, v: Uint8Array): number {
  const [x, k] = readVarint(v, 0);
  if (k === 0 || k !== v.length || x > 0xffffffff) throw new ProtocolError(`ext field 0x${tag.toString(16)}: bad varint`);
  return x;
}

/**
 * Parses a typed ext header. A malformed one throws [ProtocolError]; one
 * that is sound but not understood comes back with notUnderstood set.
 */
export function parseExt(b: Uint8Array): Ext {
  if (b.length === 0 || b[0] !== EXT_VERSION) throw new ProtocolError(`ext header is not layout version ${EXT_VERSION}`);
  const e: Ext = {};
  let i = 1;
  while (i < b.length) {
    const tag = b[i]!;
    const [n, k] = readVarint(b, i + 1);
    if (k === 0 || n > b.length - i - 1 - k) throw new ProtocolError(`ext field 0x${tag.toString(16)}: bad length`);
    const v = b.subarray(i + 1 + k, i + 1 + k + n);
    i += 1 + k + n;
    switch (tag) {
      case TAG_ROUTE:
        if (v.length !== 4) throw new ProtocolError(`ext route of ${v.length} bytes`);
        e.route = ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
        break;
      case TAG_CONTROL:
        if (v.length !== 1) throw new ProtocolError(`ext control of ${v.length} bytes`);
        e.control = v[0]!;
        break;
      case TAG_CODE:
        e.code = fieldVarint(tag, v);
        break;
      case TAG_MESSAGE:
        e.message = fromUtf8.decode(v);
        break;
      case TAG_TIMEOUT:
        e.timeoutMs = fieldVarint(tag, v);
        break;
      case TAG_CREDENTIALS:
        e.credentials = v;
        break;
      case TAG_RETRY_AFTER:
        e.retryAfterMs = fieldVarint(tag, v);
        break;
      case TAG_STREAM:
        if (v.length !== 6) throw new ProtocolError(`ext stream field of ${v.length} bytes`);
        if (v[0]! < 1 || v[0]! > 4) {
          e.notUnderstood ??= `unknown stream op ${v[0]}`;
          break;
        }
        e.stream = { op: v[0]!, fromAcceptor: (v[1]! & 1) !== 0, id: ((v[2]! << 24) | (v[3]! << 16) | (v[4]! << 8) | v[5]!) >>> 0 };
        break;
      case TAG_CREDIT:
        e.credit = fieldVarint(tag, v);
        break;
      default:
        if ((tag & CRITICAL) !== 0) e.notUnderstood ??= `unknown critical ext field 0x${tag.toString(16)}`;
    }
  }
  return e;
}
