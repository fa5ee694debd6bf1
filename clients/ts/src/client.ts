// Client: one WebSocket connection to a msgtrans server at a time, made
// again after it drops. It sends the hello, answers and sends in-band pings,
// correlates requests with responses, runs the handlers the server calls,
// and reconnects with backoff and jitter.

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { canInflate, inflateZlib } from "./compress.js";
import { CONTROL_ROUTE, Control, encodeExt, type Ext, isTypedExt, parseExt, type StreamField, StreamOp } from "./ext.js";
import type { CallOptions, Caller, HandlerContext, MethodDef, Registrar, StreamOptions } from "./method.js";
import { Code, MsgtransError, codeName, codeOf } from "./status.js";
import { type CloseInfo, type Connection, type Dialer, type WebSocketConstructor, webSocketDialer } from "./transport.js";
import { Compression, DEFAULT_LIMITS, Flags, type Limits, type Packet, PacketType, ProtocolError, decodePacket, encodePacket } from "./wire.js";

/** Where a client is in its life. */
export type ClientState =
  /** created, connect() not called yet */
  | "idle"
  /** dialing for the first time */
  | "connecting"
  /** connected: calls go through */
  | "open"
  /** the connection dropped (or could not be made): trying again after a delay */
  | "reconnecting"
  /** close() was called, or the server refused the client for good */
  | "closed";

/** A change of state, with what caused it. */
export interface StateChange {
  state: ClientState;
  /** Why the connection ended or could not be made (reconnecting, closed). */
  error?: Error;
  /** For reconnecting: how long until the next attempt, in ms. */
  retryInMs?: number;
  /** The URL connected to (open). */
  url?: string;
}

export interface ClientOptions {
  /** The WebSocket implementation (Node: the ws package's WebSocket). Default: globalThis.WebSocket. */
  webSocket?: WebSocketConstructor;
  /** Subprotocols offered. Default ["msgtrans.v1", "msgtrans"]. */
  protocols?: readonly string[];
  /** How connections are made; replaces webSocket and protocols (tests use it). */
  dialer?: Dialer;
  /** Default deadline of calls, in ms. Default 10000. */
  requestTimeoutMs?: number;
  /** How long the dial and the hello may take, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** How often to ping the server, in ms; 0 never. Default 15000. */
  pingIntervalMs?: number;
  /** A connection on which nothing arrived for this long is closed and made again, in ms. Default 45000. */
  idleTimeoutMs?: number;
  /** Make the connection again when it drops. Default true. */
  reconnect?: boolean;
  /** Delays between attempts. Default 100 ms doubling to 5 s, half of each random. */
  backoff?: BackoffOptions;
  /** Accept zlib-compressed payloads (inflated with DecompressionStream). Default: when the platform can. */
  acceptZlib?: boolean;
  /** Credentials carried by the hello for the server's authenticator. */
  credentials?: Uint8Array;
  /** Caps on received packets. Default: ext header 4 KiB, payload 1 MiB. */
  limits?: Partial<Limits>;
  /** Cap on an inflated payload, in bytes. Default 10 MiB. */
  maxDecompressed?: number;
  /** Receives packets that are not in the typed layout (raw packets by biz_type). */
  onRawPacket?: (packet: Packet) => void;
  /** Receives what the client notices but cannot return to anyone (a one-way handler's error). */
  onError?: (err: Error) => void;
  /** The random source of the backoff jitter, in [0, 1). Default Math.random. */
  random?: () => number;
}

/** Options of connect. */
export interface ConnectOptions {
  /** Keep trying (with backoff) until connected, instead of failing on the first attempt. */
  wait?: boolean;
  /** Abandons connecting. */
  signal?: AbortSignal;
}

interface PendingCall {
  resolve(payload: Uint8Array): void;
  reject(err: MsgtransError): void;
}

type UnaryHandler = { kind: "unary"; method: MethodDef; fn: (req: any, ctx: HandlerContext) => unknown };
type OneWayHandler = { kind: "one-way"; method: MethodDef; fn: (req: any, ctx: HandlerContext) => unknown };

/** A server stream this client opened, as the connection's reader sees it. */
interface OpenStream {
  /** A message frame from the server. */
  deliver(payload: Uint8Array): void;
  /** The stream ended: its Response (err set unless the status is OK), a cancel from the server, the connection lost. */
  end(err?: MsgtransError): void;
}

/** One live connection and what belongs to it alone. */
interface Link {
  conn: Connection;
  url: string;
  nextId: number;
  calls: Map<number, PendingCall>;
  /** server streams open, by stream id (the opening Request's message id) */
  streams: Map<number, OpenStream>;
  /** aborted when the connection ends: handlers' signals follow it */
  ended: AbortController;
  /** packets are handled one after another, also across an async inflate */
  inbox: Promise<void>;
  lastReceived: number;
  lastPing: number;
  pingSeq: number;
  ticker: ReturnType<typeof setInterval> | undefined;
  /** the server's hello (or first packet) arrived */
  ready: boolean;
  /** the server said it is going away: no new calls here */
  goingAway: boolean;
  /** set by a go-away that refuses the connection */
  refusal?: RefusedError;
  /** called when ready becomes true */
  onReady?: () => void;
}

/** A server stream's window unless the caller sets one, as msgtrans-go's. */
const DEFAULT_STREAM_WINDOW = 32;

const CLOSE_NORMAL = 1000;
const CLOSE_PROTOCOL = 1002;

/**
 * A msgtrans client over WebSocket. Create it with the server's URL (or
 * several, tried in turn), register handlers for the services the server
 * calls, then connect. Generated clients (newXClient) call through it and
 * generated register functions (registerXHandler) register on it.
 */
export class Client implements Caller, Registrar {
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly dial: Dialer;
  private readonly opts: Required<
    Pick<ClientOptions, "requestTimeoutMs" | "connectTimeoutMs" | "pingIntervalMs" | "idleTimeoutMs" | "reconnect" | "acceptZlib" | "maxDecompressed">
  >;
  private readonly limits: Limits;
  private readonly backoff: Backoff;
  private readonly handlers = new Map<number, UnaryHandler | OneWayHandler>();
  private readonly listeners = new Set<(c: StateChange) => void>();
  private link: Link | undefined;
  private _state: ClientState = "idle";
  /** aborted by close(): ends connect loops and pending waits */
  private readonly life = new AbortController();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private everOpen = false;
  private connecting: Promise<void> | undefined;
  private _unknownStreamFrames = 0;

  constructor(
    url: string | readonly string[],
    private readonly options: ClientOptions = {},
  ) {
    this.urls = typeof url === "string" ? [url] : [...url];
    if (this.urls.length === 0) throw new TypeError("msgtrans: no server URL");
    for (const u of this.urls) {
      let parsed: URL;
      try {
        parsed = new URL(u);
      } catch {
        throw new TypeError(`msgtrans: bad server URL ${JSON.stringify(u)}: write ws://host:port/path or wss://…`);
      }
      if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
        throw new TypeError(`msgtrans: server URL ${JSON.stringify(u)}: a browser client speaks WebSocket only (ws:// or wss://)`);
      }
    }
    this.dial = options.dialer ?? webSocketDialer({ webSocket: options.webSocket, protocols: options.protocols });
    this.opts = {
      requestTimeoutMs: positive("requestTimeoutMs", options.requestTimeoutMs, 10_000),
      connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs, 10_000),
      pingIntervalMs: nonNegative("pingIntervalMs", options.pingIntervalMs, 15_000),
      idleTimeoutMs: positive("idleTimeoutMs", options.idleTimeoutMs, 45_000),
      reconnect: options.reconnect ?? true,
      acceptZlib: options.acceptZlib ?? canInflate(),
      maxDecompressed: positive("maxDecompressed", options.maxDecompressed, 10 << 20),
    };
    if (this.opts.acceptZlib && !canInflate()) throw new TypeError("msgtrans: acceptZlib: this platform has no DecompressionStream");
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.backoff = new Backoff(options.backoff, options.random);
  }

  /** The client's state now. */
  get state(): ClientState {
    return this._state;
  }

  /** The URL of the current connection, if connected. */
  get url(): string | undefined {
    return this.link?.ready ? this.link.url : undefined;
  }

  /** Calls fn on every change of state; returns a function that stops it. */
  onStateChange(fn: (change: StateChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private setState(change: StateChange): void {
    this._state = change.state;
    for (const fn of [...this.listeners]) {
      try {
        fn(change);
      } catch (err) {
        this.report(err);
      }
    }
  }

  private report(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.options.onError) this.options.onError(e);
  }

  /**
   * Connects. It resolves once the server has answered the hello. Without
   * wait it fails if the first attempt does; with wait it tries again with
   * backoff (the state says reconnecting meanwhile) until it is connected,
   * the server refuses the client for good, or close() is called. Once
   * connected, a dropped connection is made again by itself (unless the
   * reconnect option is false).
   */
  connect(opts: ConnectOptions = {}): Promise<void> {
    if (this._state === "closed") return Promise.reject(new MsgtransError(Code.Canceled, "client is closed"));
    if (this._state === "open") return Promise.resolve();
    if (this.connecting) return this.connecting;
    this.setState({ state: "connecting" });
    return this.run(opts);
  }

  /**
   * Attempts until connected (or once, without opts.wait). After a dropped
   * connection it starts with a delay, firstError saying why.
   */
  private run(opts: ConnectOptions, firstError?: Error): Promise<void> {
    const loop = async () => {
      let err = firstError;
      for (;;) {
        if (err) await this.waitRetry(err, opts.signal);
        try {
          await this.attempt(opts.signal);
          return;
        } catch (e) {
          err = asError(e);
          if (!opts.wait || this.life.signal.aborted || opts.signal?.aborted || isFinal(err)) {
            if (this._state !== "closed") this.setState({ state: isFinal(err) || this.everOpen ? "closed" : "idle", error: err });
            throw err;
          }
        }
      }
    };
    this.connecting = loop().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Waits the next backoff delay (or the server's retry-after), in state reconnecting. */
  private waitRetry(err: Error, signal?: AbortSignal): Promise<void> {
    let delay = this.backoff.next();
    if (err instanceof RefusedError && err.retryAfterMs > delay) delay = err.retryAfterMs;
    this.setState({ state: "reconnecting", error: err, retryInMs: Math.round(delay) });
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.life.signal.removeEventListener("abort", stop);
        signal?.removeEventListener("abort", stop);
      };
      const stop = () => {
        done();
        reject(new MsgtransError(Code.Canceled, "connecting abandoned"));
      };
      this.retryTimer = setTimeout(() => {
        done();
        resolve();
      }, delay);
      this.life.signal.addEventListener("abort", stop, { once: true });
      signal?.addEventListener("abort", stop, { once: true });
    });
  }

  /** One attempt: dial the next URL, send the hello, wait for the server's first packet. */
  private async attempt(signal?: AbortSignal): Promise<void> {
    const url = this.urls[this.urlIndex % this.urls.length]!;
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new MsgtransError(Code.DeadlineExceeded, `no answer from ${url} within ${this.opts.connectTimeoutMs} ms`)),
      this.opts.connectTimeoutMs,
    );
    const onAbort = () => abort.abort(new MsgtransError(Code.Canceled, "connecting abandoned"));
    this.life.signal.addEventListener("abort", onAbort, { once: true });
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      let conn: Connection;
      try {
        conn = await this.dial(url, abort.signal);
      } catch (err) {
        this.urlIndex++;
        throw abort.signal.aborted ? abort.signal.reason : new MsgtransError(Code.Unavailable, asError(err).message);
      }
      const link = this.attach(conn, url);
      await new Promise<void>((resolve, reject) => {
        link.ended.signal.addEventListener("abort", () => reject(link.ended.signal.reason), { once: true });
        abort.signal.addEventListener(
          "abort",
          () => {
            conn.close(CLOSE_NORMAL, "hello not answered");
            reject(abort.signal.reason);
          },
          { once: true },
        );
        link.onReady = resolve;
        this.sendHello(link);
      });
      this.backoff.reset();
      const again = this.everOpen;
      this.everOpen = true;
      this.setState({ state: "open", url });
      if (again) this.emitReconnected();
    } finally {
      clearTimeout(timer);
      this.life.signal.removeEventListener("abort", onAbort);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  private readonly reconnectedListeners = new Set<() => void>();

  /**
   * Calls fn after every reconnection (not the first connection), once
   * calls go through again: the place to join rooms again, say.
   */
  onReconnected(fn: () => void): () => void {
    this.reconnectedListeners.add(fn);
    return () => this.reconnectedListeners.delete(fn);
  }

  private emitReconnected(): void {
    for (const fn of [...this.reconnectedListeners]) {
      try {
        fn();
      } catch (err) {
        this.report(err);
      }
    }
  }

  /** Makes conn the current connection. */
  private attach(conn: Connection, url: string): Link {
    const now = Date.now();
    const link: Link = {
      conn,
      url,
      nextId: 1,
      calls: new Map(),
      streams: new Map(),
      ended: new AbortController(),
      inbox: Promise.resolve(),
      lastReceived: now,
      lastPing: now,
      pingSeq: 0,
      ticker: undefined,
      ready: false,
      goingAway: false,
    };
    this.link = link;
    conn.onPacket = (b) => {
      link.lastReceived = Date.now();
      link.inbox = link.inbox.then(() => this.receive(link, b)).catch((err) => this.fail(link, err));
    };
    conn.onClose = (info) => this.closed(link, info);
    const tick = Math.max(10, Math.min(this.opts.pingIntervalMs || Infinity, this.opts.idleTimeoutMs / 4));
    link.ticker = setInterval(() => this.tick(link), tick);
    return link;
  }

  /** Pings when it is time; closes a connection on which nothing arrived for too long. */
  private tick(link: Link): void {
    const now = Date.now();
    if (now - link.lastReceived >= this.opts.idleTimeoutMs) {
      link.conn.close(CLOSE_NORMAL, "heartbeat timeout");
      this.closed(link, { code: 1006, reason: `nothing received for ${this.opts.idleTimeoutMs} ms` });
      return;
    }
    if (link.ready && this.opts.pingIntervalMs > 0 && now - link.lastPing >= this.opts.pingIntervalMs) {
      link.lastPing = now;
      const seq = ++link.pingSeq;
      const payload = new Uint8Array(8);
      new DataView(payload.buffer).setUint32(4, seq);
      this.sendControl(link, Control.Ping, payload);
    }
  }

  private nextId(link: Link): number {
    const id = link.nextId;
    link.nextId = id === 0xffffffff ? 1 : id + 1;
    return id;
  }

  private write(link: Link, p: Packet): void {
    link.conn.send(encodePacket(p));
  }

  private writeRequest(link: Link, id: number, ext: Ext, payload: Uint8Array): void {
    this.write(link, { compression: Compression.None, type: PacketType.Request, bizType: 0, messageId: id, flags: Flags.HasRouteTag, ext: encodeExt(ext), payload });
  }

  private sendControl(link: Link, kind: number, payload: Uint8Array, ext: Ext = {}): void {
    this.write(link, {
      compression: Compression.None,
      type: PacketType.OneWay,
      bizType: 0,
      messageId: this.nextId(link),
      flags: Flags.HasRouteTag,
      ext: encodeExt({ ...ext, route: CONTROL_ROUTE, control: kind }),
      payload,
    });
  }

  private sendHello(link: Link): void {
    // bit n: compression n accepted. Browsers inflate zlib, never zstd.
    const accepts = this.opts.acceptZlib ? 1 << Compression.Zlib : 0;
    this.sendControl(link, Control.Hello, Uint8Array.of(accepts), { credentials: this.options.credentials });
  }

  /** A connection ended: fail what waited on it, and reconnect unless that is over. */
  private closed(link: Link, info: CloseInfo): void {
    if (link.ended.signal.aborted) return;
    clearInterval(link.ticker);
    const why: MsgtransError = link.refusal ?? new MsgtransError(Code.Unavailable, `connection lost (${describeClose(info)})`);
    link.ended.abort(why);
    for (const [, call] of link.calls) call.reject(why);
    link.calls.clear();
    for (const [, stream] of link.streams) stream.end(why);
    link.streams.clear();
    if (this.link === link) this.link = undefined;
    if (!link.ready || this._state === "closed") return; // connect's attempt reports it
    if (link.refusal && isFinal(link.refusal)) {
      this.setState({ state: "closed", error: link.refusal });
      return;
    }
    if (!this.opts.reconnect) {
      this.setState({ state: "closed", error: why });
      return;
    }
    this.run({ wait: true }, why).catch(() => {});
  }

  /** A packet could not be handled: the connection cannot go on. */
  private fail(link: Link, err: unknown): void {
    const e = asError(err);
    this.report(e);
    const code = e instanceof ProtocolError ? CLOSE_PROTOCOL : 1011;
    link.conn.close(code, truncateReason(e.message));
    this.closed(link, { code, reason: e.message });
  }

  private async receive(link: Link, bytes: Uint8Array): Promise<void> {
    if (link.ended.signal.aborted) return;
    const p = decodePacket(bytes, this.limits);
    if (!link.ready) {
      // The server's hello, or any first packet from a server that sends none.
      link.ready = true;
      link.onReady?.();
    }
    if (p.compression === Compression.Zlib) {
      if (!this.opts.acceptZlib) throw new ProtocolError("zlib payload, which the hello did not accept");
      try {
        p.payload = await inflateZlib(p.payload, this.opts.maxDecompressed);
      } catch (err) {
        throw new ProtocolError(`zlib payload: ${asError(err).message}`);
      }
      p.compression = Compression.None;
    } else if (p.compression !== Compression.None) {
      throw new ProtocolError(`compression ${p.compression}, which the hello did not accept`);
    }
    if (!isTypedExt(p)) {
      if (p.type === PacketType.Response && link.calls.has(p.messageId)) {
        const call = link.calls.get(p.messageId)!;
        link.calls.delete(p.messageId);
        call.resolve(p.payload);
        return;
      }
      this.options.onRawPacket?.(p);
      return;
    }
    const ext = parseExt(p.ext);
    if (ext.stream && p.type !== PacketType.OneWay) throw new ProtocolError("a stream field in a Request or a Response");
    switch (p.type) {
      case PacketType.Response: {
        const stream = link.streams.get(p.messageId);
        if (stream) {
          link.streams.delete(p.messageId);
          if (ext.notUnderstood) stream.end(new MsgtransError(Code.Unimplemented, `not understood: ${ext.notUnderstood}`));
          else if (ext.code) stream.end(new MsgtransError(ext.code, ext.message ?? ""));
          else stream.end();
          return;
        }
        const call = link.calls.get(p.messageId);
        if (!call) return;
        link.calls.delete(p.messageId);
        if (ext.notUnderstood) call.reject(new MsgtransError(Code.Unimplemented, `not understood: ${ext.notUnderstood}`));
        else if (ext.code) call.reject(new MsgtransError(ext.code, ext.message ?? ""));
        else call.resolve(p.payload);
        return;
      }
      case PacketType.Request:
        if (ext.notUnderstood) {
          this.respondError(link, p.messageId, Code.Unimplemented, `not understood: ${ext.notUnderstood}`);
          return;
        }
        this.serve(link, p, ext);
        return;
      default:
        if (ext.notUnderstood) return;
        if (ext.stream) {
          this.streamFrame(link, p, ext.stream, ext);
          return;
        }
        if (ext.route === CONTROL_ROUTE) {
          this.control(link, p, ext);
          return;
        }
        this.serve(link, p, ext);
    }
  }

  /**
   * A stream frame. Only the server's frames of streams this client opened
   * mean anything here (it accepts none); a frame of no open stream is
   * dropped and counted, as docs/wire.md says.
   */
  private streamFrame(link: Link, p: Packet, f: StreamField, ext: Ext): void {
    const stream = f.fromAcceptor ? link.streams.get(f.id) : undefined;
    if (!stream) {
      this._unknownStreamFrames++;
      return;
    }
    switch (f.op) {
      case StreamOp.Message:
        stream.deliver(p.payload);
        return;
      case StreamOp.Cancel:
        link.streams.delete(f.id);
        stream.end(new MsgtransError(ext.code || Code.Canceled, ext.message ?? "stream canceled by the server"));
        return;
      default:
      // half-close (the Response follows), credit (this side sends no messages)
    }
  }

  /** Stream frames that came for no open stream, dropped (one that just ended, typically). */
  get unknownStreamFrames(): number {
    return this._unknownStreamFrames;
  }

  private control(link: Link, p: Packet, ext: Ext): void {
    switch (ext.control) {
      case Control.Ping:
        this.sendControl(link, Control.Pong, p.payload);
        return;
      case Control.GoAway:
        link.goingAway = true;
        if (ext.code) {
          link.refusal = new RefusedError(new MsgtransError(ext.code, ext.message ?? "refused"), ext.retryAfterMs ?? 0);
          link.conn.close(CLOSE_NORMAL, "refused");
          this.closed(link, { code: 1000, reason: "refused" });
        }
        return;
      default:
      // hello (the server's answer), pong, kinds added later: nothing to do
    }
  }

  /** Runs the handler of a typed Request or OneWay packet. */
  private serve(link: Link, p: Packet, ext: Ext): void {
    const route = ext.route ?? 0;
    const h = this.handlers.get(route);
    const isRequest = p.type === PacketType.Request;
    if (!h || (isRequest && h.kind !== "unary") || (!isRequest && h.kind !== "one-way")) {
      if (isRequest) this.respondError(link, p.messageId, Code.Unimplemented, `no handler for route 0x${route.toString(16).padStart(8, "0")}`);
      return;
    }
    let req: unknown;
    try {
      req = fromBinary(h.method.input, p.payload);
    } catch (err) {
      if (isRequest) this.respondError(link, p.messageId, Code.InvalidArgument, `request does not decode: ${asError(err).message}`);
      else this.report(new Error(`msgtrans: ${h.method.fullName}: message does not decode: ${asError(err).message}`));
      return;
    }
    const ac = new AbortController();
    const onEnd = () => ac.abort(link.ended.signal.reason);
    link.ended.signal.addEventListener("abort", onEnd, { once: true });
    const timer = ext.timeoutMs
      ? setTimeout(() => ac.abort(new MsgtransError(Code.DeadlineExceeded, "deadline exceeded")), ext.timeoutMs)
      : undefined;
    const ctx: HandlerContext = { method: h.method, signal: ac.signal, timeoutMs: ext.timeoutMs };
    const done = () => {
      clearTimeout(timer);
      link.ended.signal.removeEventListener("abort", onEnd);
    };
    Promise.resolve()
      .then(() => h.fn(req, ctx))
      .then(
        (res) => {
          done();
          if (!isRequest || link.ended.signal.aborted) return;
          let payload: Uint8Array;
          try {
            payload = toBinary(h.method.output, create(h.method.output, res as MessageInitShape<DescMessage>));
          } catch (err) {
            this.respondError(link, p.messageId, Code.Internal, `response does not encode: ${asError(err).message}`);
            return;
          }
          this.write(link, {
            compression: Compression.None,
            type: PacketType.Response,
            bizType: 0,
            messageId: p.messageId,
            flags: 0,
            ext: new Uint8Array(0),
            payload,
          });
        },
        (err) => {
          done();
          if (!isRequest) {
            this.report(err);
            return;
          }
          if (link.ended.signal.aborted) return;
          const e = asError(err);
          const code = codeOf(err);
          this.respondError(link, p.messageId, code === Code.OK ? Code.Unknown : code, err instanceof MsgtransError ? err.rawMessage : e.message);
        },
      );
  }

  private respondError(link: Link, id: number, code: number, message: string): void {
    this.write(link, {
      compression: Compression.None,
      type: PacketType.Response,
      bizType: 0,
      messageId: id,
      flags: Flags.HasRouteTag,
      ext: encodeExt({ code, message }),
      payload: new Uint8Array(0),
    });
  }

  /** The connection calls may use now, or an unavailable error. */
  private usable(): Link {
    const link = this.link;
    if (this._state === "closed") throw new MsgtransError(Code.Canceled, "client is closed");
    if (!link || !link.ready) throw new MsgtransError(Code.Unavailable, this._state === "reconnecting" ? "reconnecting" : "not connected");
    if (link.goingAway) throw new MsgtransError(Code.Unavailable, "server is going away");
    return link;
  }

  /**
   * Calls a unary method and waits for its response, at most timeoutMs
   * (which travels to the server as the call's deadline). Fails with a
   * [MsgtransError]: the server's status, deadline_exceeded, canceled (the
   * signal), unavailable (not connected, or the connection dropped).
   */
  call<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    request: MessageInitShape<I>,
    options: CallOptions = {},
  ): Promise<MessageShape<O>> {
    return new Promise<MessageShape<O>>((resolve, reject) => {
      if (method.kind !== "unary") throw new TypeError(`msgtrans: ${method.fullName} is ${method.kind}, not unary`);
      const timeout = options.timeoutMs ?? this.opts.requestTimeoutMs;
      if (!(timeout > 0)) throw new RangeError(`msgtrans: timeoutMs ${timeout}: must be positive`);
      if (options.signal?.aborted) throw new MsgtransError(Code.Canceled, "call canceled");
      const link = this.usable();
      const payload = toBinary(method.input, create(method.input, request));
      const id = this.nextId(link);
      const finish = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        link.calls.delete(id);
      };
      const onAbort = () => {
        finish();
        reject(new MsgtransError(Code.Canceled, "call canceled"));
      };
      const timer = setTimeout(() => {
        finish();
        reject(new MsgtransError(Code.DeadlineExceeded, `no response within ${timeout} ms`));
      }, timeout);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      link.calls.set(id, {
        resolve: (b) => {
          finish();
          try {
            resolve(fromBinary(method.output, b));
          } catch (err) {
            reject(new MsgtransError(Code.Internal, `response does not decode: ${asError(err).message}`));
          }
        },
        reject: (err) => {
          finish();
          reject(err);
        },
      });
      this.writeRequest(link, id, { route: method.route, timeoutMs: Math.ceil(timeout) }, payload);
    });
  }

  /**
   * Sends a one-way message. It resolves once the message is handed to the
   * connection (there is no answer) and fails with unavailable when not
   * connected.
   */
  async send<I extends DescMessage>(method: MethodDef<I>, request: MessageInitShape<I>, options: CallOptions = {}): Promise<void> {
    if (method.kind !== "one-way") throw new TypeError(`msgtrans: ${method.fullName} is ${method.kind}, not one-way`);
    if (options.signal?.aborted) throw new MsgtransError(Code.Canceled, "send canceled");
    const link = this.usable();
    this.write(link, {
      compression: Compression.None,
      type: PacketType.OneWay,
      bizType: 0,
      messageId: this.nextId(link),
      flags: Flags.HasRouteTag,
      ext: encodeExt({ route: method.route }),
      payload: toBinary(method.input, create(method.input, request)),
    });
  }

  /**
   * Opens a server stream: iterate the result (for await) to read the
   * server's messages. The stream opens when iteration begins and ends when
   * the server's handler returns (iteration ends; a status other than OK is
   * thrown, after the messages sent before it), when the loop is left
   * (break, return, throw: the stream is cancelled), or when options.signal
   * aborts, options.timeoutMs passes or the connection drops (thrown as
   * canceled, deadline_exceeded, unavailable). The server sends at most
   * options.window messages (32) ahead of those read; this side grants more
   * each time it has read half of it.
   */
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    request: MessageInitShape<I>,
    options: StreamOptions = {},
  ): AsyncIterable<MessageShape<O>> {
    if (method.kind !== "server-streaming") throw new TypeError(`msgtrans: ${method.fullName} is ${method.kind}, not server-streaming`);
    const window = options.window ?? DEFAULT_STREAM_WINDOW;
    if (!Number.isInteger(window) || window < 1 || window > 0x7fffffff) throw new RangeError(`msgtrans: window ${window}: must be an integer from 1 to 2^31-1`);
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) throw new RangeError(`msgtrans: timeoutMs ${options.timeoutMs}: must be positive`);
    return {
      [Symbol.asyncIterator]: () => this.openStream(method, request, options, window),
    };
  }

  private openStream<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    request: MessageInitShape<I>,
    options: StreamOptions,
    window: number,
  ): AsyncIterator<MessageShape<O>> {
    let link: Link | undefined;
    let id = 0;
    const queue: Uint8Array[] = [];
    let ended = false;
    let failure: MsgtransError | undefined;
    let wake: (() => void) | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let allowed = window; // messages the server may still send
    let read = 0; // read since the last grant
    const half = Math.max(1, Math.floor(window / 2));
    const timeout = options.timeoutMs;

    const frame = (l: Link, ext: Ext) =>
      this.write(l, {
        compression: Compression.None,
        type: PacketType.OneWay,
        bizType: 0,
        messageId: this.nextId(l),
        flags: Flags.HasRouteTag,
        ext: encodeExt(ext),
        payload: new Uint8Array(0),
      });
    const end = (err?: MsgtransError) => {
      if (ended) return;
      ended = true;
      failure = err;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      if (link?.streams.get(id) === stream) link.streams.delete(id);
      wake?.();
    };
    // Ends the stream from this side, telling the server (a cancel frame).
    const cancel = (code: number, message: string) => {
      if (ended) return;
      if (link && !link.ended.signal.aborted) frame(link, { stream: { op: StreamOp.Cancel, fromAcceptor: false, id }, code, message });
      end(code === Code.Canceled && message === "" ? undefined : new MsgtransError(code, message));
    };
    const onAbort = () => cancel(Code.Canceled, "stream canceled");
    const stream: OpenStream = {
      deliver: (payload) => {
        if (ended) return;
        if (allowed === 0) {
          cancel(Code.ResourceExhausted, `the server sent over the stream's window of ${window} messages`);
          return;
        }
        allowed--;
        queue.push(payload);
        wake?.();
      },
      end,
    };
    const open = () => {
      if (options.signal?.aborted) throw new MsgtransError(Code.Canceled, "stream canceled");
      link = this.usable();
      const payload = toBinary(method.input, create(method.input, request));
      id = this.nextId(link);
      link.streams.set(id, stream);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) timer = setTimeout(() => cancel(Code.DeadlineExceeded, `stream not done within ${timeout} ms`), timeout);
      this.writeRequest(link, id, { route: method.route, timeoutMs: timeout === undefined ? undefined : Math.ceil(timeout), credit: window }, payload);
    };

    return {
      next: async (): Promise<IteratorResult<MessageShape<O>>> => {
        if (!link && !ended) open();
        for (;;) {
          const b = queue.shift();
          if (b !== undefined) {
            if (!ended && ++read >= half) {
              frame(link!, { stream: { op: StreamOp.Credit, fromAcceptor: false, id }, credit: read });
              allowed += read;
              read = 0;
            }
            try {
              return { value: fromBinary(method.output, b), done: false };
            } catch (err) {
              const why = `stream message does not decode: ${asError(err).message}`;
              cancel(Code.Internal, why);
              throw new MsgtransError(Code.Internal, why);
            }
          }
          if (ended) {
            if (failure) throw failure;
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<MessageShape<O>>> => {
        cancel(Code.Canceled, "");
        queue.length = 0;
        return { value: undefined, done: true };
      },
    };
  }

  /** Serves a unary method the server calls: the handler's result is the response, what it throws the error status. */
  handleUnary<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    handler: (request: MessageShape<I>, ctx: HandlerContext) => MessageInitShape<O> | Promise<MessageInitShape<O>>,
  ): void {
    if (method.kind !== "unary") throw new TypeError(`msgtrans: ${method.fullName} is ${method.kind}, not unary`);
    this.register({ kind: "unary", method, fn: handler as UnaryHandler["fn"] });
  }

  /** Serves a one-way method the server pushes. */
  handleOneWay<I extends DescMessage>(method: MethodDef<I>, handler: (request: MessageShape<I>, ctx: HandlerContext) => void | Promise<void>): void {
    if (method.kind !== "one-way") throw new TypeError(`msgtrans: ${method.fullName} is ${method.kind}, not one-way`);
    this.register({ kind: "one-way", method, fn: handler as OneWayHandler["fn"] });
  }

  private register(h: UnaryHandler | OneWayHandler): void {
    const other = this.handlers.get(h.method.route);
    if (other) throw new Error(`msgtrans: route 0x${h.method.route.toString(16)} of ${h.method.fullName} already has a handler (${other.method.fullName})`);
    this.handlers.set(h.method.route, h);
  }

  /** Closes the connection and stops reconnecting; waiting calls fail with canceled. */
  close(): void {
    if (this._state === "closed") return;
    this.life.abort();
    clearTimeout(this.retryTimer);
    const link = this.link;
    this.setState({ state: "closed" });
    if (link) {
      for (const [, call] of link.calls) call.reject(new MsgtransError(Code.Canceled, "client closed"));
      link.calls.clear();
      link.conn.close(CLOSE_NORMAL, "client closed");
      this.closed(link, { code: CLOSE_NORMAL, reason: "client closed" });
    }
  }
}

/** A go-away with a status refused the connection. */
export class RefusedError extends MsgtransError {
  constructor(
    status: MsgtransError,
    readonly retryAfterMs: number,
  ) {
    super(status.code, status.rawMessage);
    this.name = "RefusedError";
  }
}

/** Refusals the client must not retry: the credentials will not change by themselves. */
function isFinal(err: Error): boolean {
  return err instanceof MsgtransError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied);
}

function describeClose(info: CloseInfo): string {
  return info.reason ? `${info.code} ${info.reason}` : `${info.code}`;
}

/** A WebSocket close reason holds at most 123 bytes of UTF-8. */
function truncateReason(s: string): string {
  const b = new TextEncoder().encode(s);
  if (b.length <= 123) return s;
  return new TextDecoder().decode(b.subarray(0, 120)).replace(/\uFFFD+$/, "") + "…";
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function positive(name: string, v: number | undefined, def: number): number {
  if (v === undefined) return def;
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`msgtrans: ${name} ${v}: must be a positive number of ms`);
  return v;
}

function nonNegative(name: string, v: number | undefined, def: number): number {
  if (v === undefined) return def;
  if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`msgtrans: ${name} ${v}: must be 0 or a positive number of ms`);
  return v;
}

export { codeName };
