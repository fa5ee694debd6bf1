// The client against a scripted server on in-memory connections: the
// hello, request correlation, deadlines and cancellation, pings both ways,
// heartbeat timeouts, handlers the server calls, compression, go-away and
// reconnection.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deflateSync } from "node:zlib";
import { type DescMessage, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema, UInt32ValueSchema } from "@bufbuild/protobuf/wkt";
import { Client, type ClientOptions, type StateChange } from "../src/client.js";
import { Control, encodeExt, isTypedExt, parseExt, type Ext } from "../src/ext.js";
import type { MethodDef, MethodKind } from "../src/method.js";
import { Code, MsgtransError } from "../src/status.js";
import type { CloseInfo, Connection, Dialer } from "../src/transport.js";
import { Compression, Flags, type Packet, PacketType, decodePacket, encodePacket } from "../src/wire.js";

function method<I extends DescMessage, O extends DescMessage>(name: string, route: number, kind: MethodKind, input: I, output: O): MethodDef<I, O> {
  return { name, fullName: `test.v1.TestService.${name}`, route, kind, input, output };
}

const Echo = method("Echo", 0x1001, "unary", StringValueSchema, StringValueSchema);
const Note = method("Note", 0x1002, "one-way", StringValueSchema, StringValueSchema);
const Count = method("Count", 0x1003, "unary", UInt32ValueSchema, UInt32ValueSchema);

/** A queue whose take waits for the next item. */
class Queue<T> {
  private items: T[] = [];
  private waiters: ((v: T) => void)[] = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  take(what: string, ms = 5000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nothing came: ${what}`)), ms);
      this.waiters.push((x) => {
        clearTimeout(timer);
        resolve(x);
      });
    });
  }
}

/** The server's end of one in-memory connection. */
class ServerEnd {
  readonly received = new Queue<Packet>();
  readonly closedBy = new Queue<CloseInfo>();
  nextId = 1;
  closed = false;
  constructor(readonly client: Connection) {}

  send(p: Partial<Packet> & { type: number }): void {
    const full: Packet = { compression: 0, bizType: 0, messageId: this.nextId++, flags: 0, ext: new Uint8Array(0), payload: new Uint8Array(0), ...p };
    this.sendBytes(encodePacket(full));
  }
  sendBytes(b: Uint8Array): void {
    if (!this.closed) queueMicrotask(() => this.client.onPacket(b));
  }
  control(kind: number, payload: Uint8Array = new Uint8Array(0), ext: Ext = {}): void {
    this.send({ type: PacketType.OneWay, flags: Flags.HasRouteTag, ext: encodeExt({ ...ext, route: 0, control: kind }), payload });
  }
  hello(): void {
    this.control(Control.Hello, Uint8Array.of(6));
  }
  /** The server closes the connection. */
  close(code = 1001, reason = "going away"): void {
    if (this.closed) return;
    this.closed = true;
    queueMicrotask(() => this.client.onClose({ code, reason }));
  }
  /** The next packet from the client that is not a ping or pong. */
  async next(what: string): Promise<Packet> {
    for (;;) {
      const p = await this.received.take(what);
      if (isTypedExt(p)) {
        const e = parseExt(p.ext);
        if (e.route === 0 && (e.control === Control.Ping || e.control === Control.Pong)) continue;
      }
      return p;
    }
  }
}

/** A dialer handing out in-memory connections; the test plays the server. */
function fakeServer(opts: { refuse?: number } = {}) {
  const conns = new Queue<ServerEnd>();
  let dials = 0;
  const dialer: Dialer = async (_url, signal) => {
    dials++;
    if (signal.aborted) throw signal.reason;
    if (opts.refuse && dials <= opts.refuse) throw new Error("connection refused");
    let end: ServerEnd;
    const conn: Connection = {
      protocol: "msgtrans.v1",
      send: (b) => {
        if (!end.closed) end.received.push(decodePacket(b));
      },
      close: (code = 1000, reason = "") => {
        if (end.closed) return;
        end.closed = true;
        end.closedBy.push({ code, reason });
        queueMicrotask(() => conn.onClose({ code, reason }));
      },
      onPacket: () => {},
      onClose: () => {},
    };
    end = new ServerEnd(conn);
    conns.push(end);
    return conn;
  };
  return { dialer, conns, dials: () => dials };
}

/** A client connected to a fresh fake server, the hello exchanged. */
async function connected(options: ClientOptions = {}) {
  const srv = fakeServer();
  const client = new Client("ws://test.invalid/ws", { dialer: srv.dialer, random: () => 0, backoff: { initialMs: 5, maxMs: 20 }, ...options });
  const states: StateChange[] = [];
  client.onStateChange((c) => states.push(c));
  const done = client.connect();
  const end = await srv.conns.take("a dial");
  const hello = await end.received.take("the hello");
  end.hello();
  await done;
  return { srv, client, end, hello, states };
}

test("connect sends the hello and waits for the server's", async (t) => {
  const { client, hello, states } = await connected();
  t.after(() => client.close());
  assert.equal(hello.type, PacketType.OneWay);
  assert.equal(hello.messageId, 1);
  assert.equal(hello.flags, Flags.HasRouteTag);
  assert.deepEqual(parseExt(hello.ext), { route: 0, control: Control.Hello });
  assert.deepEqual([...hello.payload], [1 << Compression.Zlib], "accepts zlib, never zstd");
  assert.equal(client.state, "open");
  assert.deepEqual(states.map((s) => s.state), ["connecting", "open"]);
});

test("a hello without zlib, and with credentials", async (t) => {
  const { client, hello } = await connected({ acceptZlib: false, credentials: Uint8Array.of(1, 2, 3) });
  t.after(() => client.close());
  assert.deepEqual([...hello.payload], [0]);
  assert.deepEqual([...parseExt(hello.ext).credentials!], [1, 2, 3]);
});

test("responses find their calls, in any order", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const calls = ["a", "b", "c"].map((s) => client.call(Echo, { value: s }));
  const reqs = [await end.next("a"), await end.next("b"), await end.next("c")];
  assert.deepEqual(reqs.map((r) => r.messageId), [2, 3, 4], "ids count on from the hello's");
  for (const r of reqs) {
    assert.equal(r.type, PacketType.Request);
    const e = parseExt(r.ext);
    assert.equal(e.route, Echo.route);
    assert.equal(e.timeoutMs, 10_000, "the default deadline travels");
  }
  for (const r of [reqs[2]!, reqs[0]!, reqs[1]!]) {
    const text = fromBinary(StringValueSchema, r.payload).value;
    end.send({ type: PacketType.Response, messageId: r.messageId, payload: toBinary(StringValueSchema, create(StringValueSchema, { value: text + "!" })) });
  }
  assert.deepEqual((await Promise.all(calls)).map((r) => r.value), ["a!", "b!", "c!"]);
});

test("an error response fails the call with its code and message", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const call = client.call(Echo, { value: "x" });
  const r = await end.next("the request");
  end.send({ type: PacketType.Response, messageId: r.messageId, flags: Flags.HasRouteTag, ext: encodeExt({ code: Code.NotFound, message: "no such room" }) });
  await assert.rejects(call, (err: unknown) => err instanceof MsgtransError && err.code === Code.NotFound && err.rawMessage === "no such room" && err.message === "not_found: no such room");
});

test("a response with a critical field not understood fails its call", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const call = client.call(Echo, { value: "x" });
  const r = await end.next("the request");
  end.send({ type: PacketType.Response, messageId: r.messageId, flags: Flags.HasRouteTag, ext: Uint8Array.of(1, 0x8a, 0) });
  await assert.rejects(call, (err: unknown) => err instanceof MsgtransError && err.code === Code.Unimplemented && /0x8a/.test(err.message));
});

test("deadlines: the call fails at its timeout, which travels to the server", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const call = client.call(Echo, { value: "slow" }, { timeoutMs: 30 });
  const r = await end.next("the request");
  assert.equal(parseExt(r.ext).timeoutMs, 30);
  await assert.rejects(call, (err: unknown) => err instanceof MsgtransError && err.code === Code.DeadlineExceeded);
  // A late response is dropped; the next call goes on.
  end.send({ type: PacketType.Response, messageId: r.messageId, payload: toBinary(StringValueSchema, create(StringValueSchema, { value: "late" })) });
  const next = client.call(Echo, { value: "quick" });
  const r2 = await end.next("the second request");
  end.send({ type: PacketType.Response, messageId: r2.messageId, payload: toBinary(StringValueSchema, create(StringValueSchema, { value: "ok" })) });
  assert.equal((await next).value, "ok");
});

test("an AbortSignal cancels the call", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  const ac = new AbortController();
  const call = client.call(Echo, { value: "x" }, { signal: ac.signal });
  await end.next("the request");
  ac.abort();
  await assert.rejects(call, (err: unknown) => err instanceof MsgtransError && err.code === Code.Canceled);
  await assert.rejects(client.call(Echo, { value: "y" }, { signal: ac.signal }), (err: unknown) => err instanceof MsgtransError && err.code === Code.Canceled);
});

test("calls of the wrong kind and bad timeouts are refused", async (t) => {
  const { client } = await connected();
  t.after(() => client.close());
  await assert.rejects(client.call(Note, { value: "x" }), TypeError);
  await assert.rejects(client.send(Echo, { value: "x" }), TypeError);
  await assert.rejects(client.call(Echo, { value: "x" }, { timeoutMs: 0 }), RangeError);
  assert.throws(() => client.handleOneWay(Echo, () => {}), TypeError);
});

test("one-way sends carry the route and no deadline", async (t) => {
  const { client, end } = await connected();
  t.after(() => client.close());
  await client.send(Note, { value: "hi" });
  const p = await end.next("the message");
  assert.equal(p.type, PacketType.OneWay);
  assert.deepEqual(parseExt(p.ext), { route: Note.route });
  assert.equal(fromBinary(StringValueSchema, p.payload).value, "hi");
});

test("the server's pings are answered with its payload", async (t) => {
  const { client, end } = await connected({ pingIntervalMs: 0 });
  t.after(() => client.close());
  end.control(Control.Ping, Uint8Array.of(9, 8, 7));
  const pong = await end.received.take("the pong");
  assert.deepEqual(parseExt(pong.ext), { route: 0, control: Control.Pong });
  assert.deepEqual([...pong.payload], [9, 8, 7]);
});

test("the client pings every interval", async (t) => {
  const { client, end } = await connected({ pingIntervalMs: 20, idleTimeoutMs: 60_000 });
  t.after(() => client.close());
  const seqs: number[] = [];
  while (seqs.length < 2) {
    const p = await end.received.take("a ping");
    const e = parseExt(p.ext);
    assert.equal(e.control, Control.Ping);
    assert.equal(p.payload.length, 8);
    seqs.push(new DataView(Uint8Array.from(p.payload).buffer).getUint32(4));
    end.control(Control.Pong, p.payload);
  }
  assert.deepEqual(seqs, [1, 2]);
});

test("a silent connection is closed at the idle timeout and made again", async (t) => {
  const { client, end, srv } = await connected({ pingIntervalMs: 10, idleTimeoutMs: 60 });
  t.after(() => client.close());
  const closed = await end.closedBy.take("the client closing the silent connection");
  assert.equal(closed.reason, "heartbeat timeout");
  const again = await srv.conns.take("a second dial");
  await again.received.take("the hello again");
  const reconnected = new Promise<void>((resolve) => client.onReconnected(resolve));
  again.hello();
  await reconnected;
  assert.equal(client.state, "open");
});

test("handlers answer the server's requests", async (t) => {
  const srv = fakeServer();
  const client = new Client("ws://test.invalid/ws", { dialer: srv.dialer });
  t.after(() => client.close());
  let pushed = "";
  client.handleUnary(Echo, (req, ctx) => {
    assert.equal(ctx.timeoutMs, 500);
    return { value: req.value.toUpperCase() };
  });
  client.handleUnary(Count, (req) => {
    if (req.value === 0) throw new MsgtransError(Code.InvalidArgument, "zero");
    if (req.value === 1) throw new Error("boom");
    return { value: req.value + 1 };
  });
  const gotPush = new Promise<void>((resolve) =>
    client.handleOneWay(Note, (req) => {
      pushed = req.value;
      resolve();
    }),
  );
  assert.throws(() => client.handleUnary(Echo, () => ({})), /already has a handler/);
  const done = client.connect();
  const end = await srv.conns.take("a dial");
  await end.received.take("the hello");
  end.hello();
  await done;

  const request = (route: number, payload: Uint8Array, ext: Ext = {}) => {
    const id = end.nextId;
    end.send({ type: PacketType.Request, flags: Flags.HasRouteTag, ext: encodeExt({ route, ...ext }), payload });
    return id;
  };
  const cases: { name: string; id: number; code?: number; message?: RegExp; value?: string | number }[] = [
    { name: "echo", id: request(Echo.route, toBinary(StringValueSchema, create(StringValueSchema, { value: "hi" })), { timeoutMs: 500 }), value: "HI" },
    { name: "count", id: request(Count.route, toBinary(UInt32ValueSchema, create(UInt32ValueSchema, { value: 41 }))), value: 42 },
    { name: "thrown status", id: request(Count.route, toBinary(UInt32ValueSchema, create(UInt32ValueSchema, { value: 0 }))), code: Code.InvalidArgument, message: /^zero$/ },
    { name: "thrown error", id: request(Count.route, toBinary(UInt32ValueSchema, create(UInt32ValueSchema, { value: 1 }))), code: Code.Unknown, message: /boom/ },
    { name: "unknown route", id: request(0x9999, new Uint8Array(0)), code: Code.Unimplemented, message: /route 0x00009999/ },
    { name: "one-way route called", id: request(Note.route, new Uint8Array(0)), code: Code.Unimplemented },
    { name: "bad payload", id: request(Echo.route, Uint8Array.of(0x0a, 0x05, 0x61)), code: Code.InvalidArgument, message: /does not decode/ },
    { name: "not understood", id: (() => { const id = end.nextId; end.send({ type: PacketType.Request, flags: Flags.HasRouteTag, ext: Uint8Array.of(1, 0x81, 4, 0, 0, 0x10, 1, 0x8b, 0) }); return id; })(), code: Code.Unimplemented, message: /not understood: unknown critical ext field 0x8b/ },
  ];
  const byId = new Map<number, Packet>();
  while (byId.size < cases.length) {
    const p = await end.next("responses");
    assert.equal(p.type, PacketType.Response);
    byId.set(p.messageId, p);
  }
  for (const c of cases) {
    const p = byId.get(c.id)!;
    if (c.code === undefined) {
      assert.equal(p.ext.length, 0, c.name);
      const schema = typeof c.value === "number" ? UInt32ValueSchema : StringValueSchema;
      assert.equal(fromBinary(schema, p.payload).value, c.value, c.name);
    } else {
      const e = parseExt(p.ext);
      assert.equal(e.code, c.code, c.name);
      if (c.message) assert.match(e.message ?? "", c.message, c.name);
    }
  }
  end.send({ type: PacketType.OneWay, flags: Flags.HasRouteTag, ext: encodeExt({ route: Note.route }), payload: toBinary(StringValueSchema, create(StringValueSchema, { value: "pushed" })) });
  await gotPush;
  assert.equal(pushed, "pushed");
});

test("a zlib payload is inflated; zstd, never accepted, closes the connection", async (t) => {
  const { client, end, srv } = await connected();
  t.after(() => client.close());
  const got = new Promise<string>((resolve) => client.handleOneWay(Note, (req) => resolve(req.value)));
  const body = toBinary(StringValueSchema, create(StringValueSchema, { value: "z".repeat(1000) }));
  end.send({ type: PacketType.OneWay, compression: Compression.Zlib, flags: Flags.HasRouteTag, ext: encodeExt({ route: Note.route }), payload: new Uint8Array(deflateSync(Buffer.from(body))) });
  assert.equal(await got, "z".repeat(1000));
  end.send({ type: PacketType.OneWay, compression: Compression.Zstd, flags: Flags.HasRouteTag, ext: encodeExt({ route: Note.route }), payload: Uint8Array.of(1) });
  const closed = await end.closedBy.take("the client closing on zstd");
  assert.equal(closed.code, 1002);
  assert.match(closed.reason, /compression 1/);
  await srv.conns.take("a reconnection");
});

test("a zlib payload is refused when the hello did not accept it", async (t) => {
  const { client, end } = await connected({ acceptZlib: false });
  t.after(() => client.close());
  end.send({ type: PacketType.OneWay, compression: Compression.Zlib, flags: Flags.HasRouteTag, ext: encodeExt({ route: Note.route }), payload: new Uint8Array(deflateSync(Uint8Array.of(1))) });
  const closed = await end.closedBy.take("the client closing");
  assert.equal(closed.code, 1002);
});

test("a zlib bomb is refused past maxDecompressed", async (t) => {
  const { client, end } = await connected({ maxDecompressed: 1000 });
  t.after(() => client.close());
  end.send({ type: PacketType.OneWay, compression: Compression.Zlib, flags: Flags.HasRouteTag, ext: encodeExt({ route: Note.route }), payload: new Uint8Array(deflateSync(new Uint8Array(100_000))) });
  const closed = await end.closedBy.take("the client closing");
  assert.equal(closed.code, 1002);
  assert.match(closed.reason, /inflates past 1000 bytes/);
});

test("a dropped connection fails its calls, then the client reconnects with backoff", async (t) => {
  const { client, end, srv, states } = await connected();
  t.after(() => client.close());
  const call = client.call(Echo, { value: "x" });
  await end.next("the request");
  let reconnects = 0;
  client.onReconnected(() => reconnects++);
  end.close(1001, "server shutting down");
  await assert.rejects(call, (err: unknown) => err instanceof MsgtransError && err.code === Code.Unavailable && /1001 server shutting down/.test(err.message));
  await assert.rejects(client.call(Echo, { value: "y" }), (err: unknown) => err instanceof MsgtransError && err.code === Code.Unavailable);
  const again = await srv.conns.take("a second dial");
  const hello = await again.received.take("the hello");
  assert.equal(hello.messageId, 1, "ids start again at 1");
  const open = new Promise<void>((resolve) => client.onReconnected(resolve));
  again.hello();
  await open;
  assert.equal(reconnects, 1);
  const st = states.map((s) => s.state);
  assert.deepEqual(st, ["connecting", "open", "reconnecting", "open"]);
  const r = states[2]!;
  assert.match(r.error!.message, /connection lost/);
  assert.equal(r.retryInMs, 5, "the first delay, jitter drawn as 0");
});

test("connect with wait tries again until the server is there", async (t) => {
  const srv = fakeServer({ refuse: 3 });
  const client = new Client("ws://test.invalid/ws", { dialer: srv.dialer, random: () => 0, backoff: { initialMs: 1, maxMs: 4 } });
  t.after(() => client.close());
  const delays: number[] = [];
  client.onStateChange((c) => c.state === "reconnecting" && delays.push(c.retryInMs!));
  const done = client.connect({ wait: true });
  const end = await srv.conns.take("the fourth dial");
  await end.received.take("the hello");
  end.hello();
  await done;
  assert.equal(srv.dials(), 4);
  assert.deepEqual(delays, [1, 2, 4]);
});

test("connect without wait fails on the first refusal", async () => {
  const srv = fakeServer({ refuse: 1 });
  const client = new Client("ws://test.invalid/ws", { dialer: srv.dialer });
  await assert.rejects(client.connect(), (err: unknown) => err instanceof MsgtransError && err.code === Code.Unavailable && /connection refused/.test(err.message));
  assert.equal(client.state, "idle");
  client.close();
});

test("a go-away refusing authentication closes the client for good", async (t) => {
  const { client, end, srv } = await connected();
  t.after(() => client.close());
  const closed = new Promise<StateChange>((resolve) => client.onStateChange((c) => c.state === "closed" && resolve(c)));
  end.control(Control.GoAway, new Uint8Array(0), { code: Code.Unauthenticated, message: "bad token" });
  const c = await closed;
  assert.equal((c.error as MsgtransError).code, Code.Unauthenticated);
  assert.equal(srv.dials(), 1);
});

test("a go-away without status stops new calls until the reconnection", async (t) => {
  const { client, end, srv } = await connected();
  t.after(() => client.close());
  end.control(Control.GoAway);
  const pong = new Promise<void>((resolve) => {
    // A packet after the go-away has been handled: calls are refused now.
    end.control(Control.Ping, Uint8Array.of(1));
    void end.received.take("the pong").then(() => resolve());
  });
  await pong;
  await assert.rejects(client.call(Echo, { value: "x" }), (err: unknown) => err instanceof MsgtransError && /going away/.test(err.message));
  end.close();
  const again = await srv.conns.take("a reconnection");
  await again.received.take("the hello");
  again.hello();
  await new Promise<void>((resolve) => client.onReconnected(resolve));
});

test("close fails waiting calls and stops reconnecting", async () => {
  const { client, end, srv } = await connected();
  const call = client.call(Echo, { value: "x" });
  await end.next("the request");
  client.close();
  await assert.rejects(call, (err: unknown) => err instanceof MsgtransError && err.code === Code.Canceled);
  assert.equal((await end.closedBy.take("the close")).code, 1000);
  assert.equal(client.state, "closed");
  assert.equal(srv.dials(), 1);
  await assert.rejects(client.connect(), (err: unknown) => err instanceof MsgtransError && err.code === Code.Canceled);
});

test("bad URLs and options are refused", () => {
  assert.throws(() => new Client("127.0.0.1:7002"), /bad server URL/);
  assert.throws(() => new Client("tcp://127.0.0.1:7001"), /WebSocket only/);
  assert.throws(() => new Client([]), /no server URL/);
  assert.throws(() => new Client("ws://h/ws", { requestTimeoutMs: -1 }), RangeError);
  assert.throws(() => new Client("ws://h/ws", { pingIntervalMs: NaN }), RangeError);
});
