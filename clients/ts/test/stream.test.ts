// Server streams against a scripted server on in-memory connections: the
// opening Request, messages read in order with credit granted at half the
// window, the end with OK or a status, cancellation (leaving the loop, the
// signal, the deadline), overrun, frames of no open stream, and the
// connection dropping.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type DescMessage, create, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema, UInt32ValueSchema } from "@bufbuild/protobuf/wkt";
import { Client, type ClientOptions } from "../src/client.js";
import { Control, StreamOp, encodeExt, parseExt } from "../src/ext.js";
import type { MethodDef, MethodKind } from "../src/method.js";
import { Code, MsgtransError } from "../src/status.js";
import type { Connection, Dialer } from "../src/transport.js";
import { Flags, type Packet, PacketType, decodePacket, encodePacket } from "../src/wire.js";

function method<I extends DescMessage, O extends DescMessage>(name: string, route: number, kind: MethodKind, input: I, output: O): MethodDef<I, O> {
  return { name, fullName: `test.v1.TestService.${name}`, route, kind, input, output };
}

const Count = method("Count", 0x2001, "server-streaming", UInt32ValueSchema, StringValueSchema);
const Echo = method("Echo", 0x2002, "unary", StringValueSchema, StringValueSchema);

/** The server's end of one in-memory connection. */
class ServerEnd {
  private items: Packet[] = [];
  private waiters: ((p: Packet) => void)[] = [];
  nextId = 1;
  closed = false;
  constructor(readonly client: Connection) {}
  got(p: Packet): void {
    const w = this.waiters.shift();
    if (w) w(p);
    else this.items.push(p);
  }
  /** The next packet from the client that is not a ping or pong. */
  async next(what: string): Promise<Packet> {
    for (;;) {
      const p =
        this.items.shift() ??
        (await new Promise<Packet>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`nothing came: ${what}`)), 5000);
          this.waiters.push((x) => {
            clearTimeout(timer);
            resolve(x);
          });
        }));
      const e = parseExt(p.ext);
      if (e.route === 0 && (e.control === Control.Ping || e.control === Control.Pong)) continue;
      return p;
    }
  }
  /** Whether a packet came that nobody took yet. */
  pending(): number {
    return this.items.length;
  }
  send(p: Partial<Packet> & { type: number }): void {
    const full: Packet = { compression: 0, bizType: 0, messageId: this.nextId++, flags: Flags.HasRouteTag, ext: new Uint8Array(0), payload: new Uint8Array(0), ...p };
    if (!this.closed) queueMicrotask(() => this.client.onPacket(encodePacket(full)));
  }
  /** A message frame of the stream id, as its acceptor sends it. */
  message(id: number, text: string): void {
    this.send({ type: PacketType.OneWay, ext: encodeExt({ stream: { op: StreamOp.Message, fromAcceptor: true, id } }), payload: toBinary(StringValueSchema, create(StringValueSchema, { value: text })) });
  }
  /** The Response that ends the stream id, with a status when code is set. */
  end(id: number, code = 0, message = ""): void {
    this.send({ type: PacketType.Response, messageId: id, ext: encodeExt({ code, message }) });
  }
  close(): void {
    this.closed = true;
    queueMicrotask(() => this.client.onClose({ code: 1001, reason: "going away" }));
  }
}

async function connected(options: ClientOptions = {}) {
  let end!: ServerEnd;
  let dialed!: () => void;
  const ready = new Promise<void>((r) => (dialed = r));
  const dialer: Dialer = async () => {
    const conn: Connection = {
      protocol: "msgtrans.v1",
      send: (b) => end.got(decodePacket(b)),
      close: () => {},
      onPacket: () => {},
      onClose: () => {},
    };
    end = new ServerEnd(conn);
    dialed();
    return conn;
  };
  const client = new Client("ws://test.invalid/ws", { dialer, reconnect: false, ...options });
  const done = client.connect();
  await ready;
  await end.next("the hello");
  end.send({ type: PacketType.OneWay, ext: encodeExt({ route: 0, control: Control.Hello }), payload: Uint8Array.of(0) });
  await done;
  return { client, end };
}

/** Reads it to its end, returning the texts, or the error that ended it. */
async function drain(it: AsyncIterable<{ value: string }>): Promise<string[] | MsgtransError> {
  const got: string[] = [];
  try {
    for await (const m of it) got.push(m.value);
    return got;
  } catch (err) {
    assert.ok(err instanceof MsgtransError, String(err));
    return err;
  }
}

test("a server stream: the opening Request, messages in order, the end", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const read = drain(client.serverStream(Count, { value: 3 }, { window: 8, timeoutMs: 5000 }));
  const open = await end.next("the opening request");
  assert.equal(open.type, PacketType.Request);
  const e = parseExt(open.ext);
  assert.equal(e.route, Count.route);
  assert.equal(e.credit, 8, "the window travels in the credit field");
  assert.equal(e.timeoutMs, 5000, "the deadline travels");
  for (const s of ["1", "2", "3"]) end.message(open.messageId, s);
  end.end(open.messageId);
  assert.deepEqual(await read, ["1", "2", "3"]);
});

test("credit: granted each time half the window has been read, never more than read", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const window = 4;
  const it = client.serverStream(Count, { value: 10 }, { window })[Symbol.asyncIterator]();
  const first = it.next();
  const open = await end.next("the opening request");
  let granted = 0;
  for (let sent = 0; sent < 10; ) {
    // The server sends what it may: its window, plus what was granted.
    for (; sent < window + granted && sent < 10; sent++) end.message(open.messageId, String(sent));
    const r = await (sent === window ? first : it.next());
    assert.equal(r.done, false);
    for (let k = 0; k < window / 2 - 1; k++) assert.equal((await it.next()).done, false);
    const c = await end.next("a credit frame");
    const ce = parseExt(c.ext);
    assert.deepEqual(ce.stream, { op: StreamOp.Credit, fromAcceptor: false, id: open.messageId });
    assert.equal(ce.credit, window / 2);
    granted += ce.credit!;
    if (granted >= 8) break;
  }
  await it.return!();
  const cancel = await end.next("the cancel frame");
  assert.equal(parseExt(cancel.ext).stream?.op, StreamOp.Cancel);
});

test("a status ends the stream after the messages before it", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const read = drain(client.serverStream(Count, { value: 1 }));
  const open = await end.next("the opening request");
  end.message(open.messageId, "only");
  end.end(open.messageId, Code.NotFound, "no such room");
  const err = await read;
  assert.ok(err instanceof MsgtransError);
  assert.equal(err.code, Code.NotFound);
  assert.equal(err.rawMessage, "no such room");
});

test("leaving the loop cancels the stream; later frames are dropped and counted", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const open = (async () => {
    for await (const m of client.serverStream(Count, { value: 9 })) {
      if (m.value === "b") break;
    }
  })();
  const req = await end.next("the opening request");
  for (const s of ["a", "b"]) end.message(req.messageId, s);
  await open;
  const cancel = await end.next("the cancel frame");
  const ce = parseExt(cancel.ext);
  assert.deepEqual(ce.stream, { op: StreamOp.Cancel, fromAcceptor: false, id: req.messageId });
  assert.equal(ce.code, Code.Canceled);
  end.message(req.messageId, "late");
  // The next call's answer proves the late frame was handled before it.
  const call = client.call(Echo, { value: "x" });
  const r = await end.next("the request after");
  end.send({ type: PacketType.Response, messageId: r.messageId, payload: toBinary(StringValueSchema, create(StringValueSchema, { value: "y" })) });
  await call;
  assert.equal(client.unknownStreamFrames, 1);
});

test("the signal and the deadline cancel the stream, telling the server why", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const ac = new AbortController();
  const aborted = drain(client.serverStream(Count, { value: 1 }, { signal: ac.signal }));
  const r1 = await end.next("the first opening request");
  ac.abort();
  const c1 = parseExt((await end.next("its cancel frame")).ext);
  assert.equal(c1.stream?.id, r1.messageId);
  assert.equal(c1.code, Code.Canceled);
  assert.equal((await aborted as MsgtransError).code, Code.Canceled);

  const late = drain(client.serverStream(Count, { value: 1 }, { timeoutMs: 20 }));
  const r2 = await end.next("the second opening request");
  const c2 = parseExt((await end.next("its cancel frame")).ext);
  assert.equal(c2.stream?.id, r2.messageId);
  assert.equal(c2.code, Code.DeadlineExceeded);
  assert.equal((await late as MsgtransError).code, Code.DeadlineExceeded);
});

test("a server that overruns the window has the stream reset", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  // A window of 4 (credit after 2 read): one message read, five sent.
  const it = client.serverStream(Count, { value: 1 }, { window: 4 })[Symbol.asyncIterator]();
  const first = it.next();
  const req = await end.next("the opening request");
  for (const s of ["1", "2", "3", "4", "5"]) end.message(req.messageId, s);
  assert.equal((await first).value?.value, "1");
  const c = parseExt((await end.next("the reset")).ext);
  assert.deepEqual(c.stream, { op: StreamOp.Cancel, fromAcceptor: false, id: req.messageId });
  assert.equal(c.code, Code.ResourceExhausted);
  // What came within the window is still read, then the reset's status.
  const rest = await drain({ [Symbol.asyncIterator]: () => it });
  assert.equal((rest as MsgtransError).code, Code.ResourceExhausted);
});

test("a cancel frame from the server, and the connection dropping, end streams with their status", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const cancelled = drain(client.serverStream(Count, { value: 1 }));
  const r1 = await end.next("the first opening request");
  end.send({ type: PacketType.OneWay, ext: encodeExt({ stream: { op: StreamOp.Cancel, fromAcceptor: true, id: r1.messageId }, code: Code.Aborted, message: "reset" }) });
  assert.equal((await cancelled as MsgtransError).code, Code.Aborted);

  const dropped = drain(client.serverStream(Count, { value: 1 }));
  await end.next("the second opening request");
  end.close();
  assert.equal((await dropped as MsgtransError).code, Code.Unavailable);
});

test("only server-streaming methods, and sane options", async (t) => {
  const { client } = await connected();
  t.after(() => client.close());
  assert.throws(() => client.serverStream(Echo as unknown as typeof Count, { value: 1 }), TypeError);
  assert.throws(() => client.serverStream(Count, { value: 1 }, { window: 0 }), RangeError);
  assert.throws(() => client.serverStream(Count, { value: 1 }, { timeoutMs: -1 }), RangeError);
});
