// What generated code (protoc-gen-msgtrans with lang=ts) tells the runtime
// about each method, and the shapes it builds typed clients and handlers on.

import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";

/** How a method is called, as the generator classifies it. */
export type MethodKind = "unary" | "one-way" | "server-streaming" | "client-streaming" | "bidi-streaming";

/**
 * A method as protoc-gen-msgtrans describes it: its route id (hashed from
 * the full name by the Go generator, or set by an option), its kind, and the
 * protobuf-es schemas of its messages.
 */
export interface MethodDef<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage, K extends MethodKind = MethodKind> {
  /** The proto method name, "Join". */
  readonly name: string;
  /** The method's full name, "chat.v1.ChatService.Join". */
  readonly fullName: string;
  /** The route id that travels in each packet's ext header. */
  readonly route: number;
  readonly kind: K;
  readonly input: I;
  readonly output: O;
}

/** Options of one call. */
export interface CallOptions {
  /** How long to wait for the response, in ms. Default: the client's requestTimeoutMs (10 s). */
  timeoutMs?: number;
  /** Aborting it abandons the call, which fails with code canceled. */
  signal?: AbortSignal;
}

/** Options of a server stream. */
export interface StreamOptions {
  /** The stream's deadline in ms, which travels to the server; none by default (a server caps a stream's life). */
  timeoutMs?: number;
  /** Aborting it cancels the stream: reading fails with code canceled. */
  signal?: AbortSignal;
  /** How many messages the server may send ahead of those read: the stream's window. Default 32. */
  window?: number;
}

/** What a handler is told about the request it handles. */
export interface HandlerContext {
  /** The method being handled. */
  readonly method: MethodDef;
  /** Aborted when the caller's deadline passes or the connection closes. */
  readonly signal: AbortSignal;
  /** The caller's remaining time when the request arrived, in ms; undefined without a deadline. */
  readonly timeoutMs: number | undefined;
}

/** Makes typed calls: what generated clients are built on ([Client] is one). */
export interface Caller {
  call<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    request: MessageInitShape<I>,
    options?: CallOptions,
  ): Promise<MessageShape<O>>;
  send<I extends DescMessage>(method: MethodDef<I>, request: MessageInitShape<I>, options?: CallOptions): Promise<void>;
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    request: MessageInitShape<I>,
    options?: StreamOptions,
  ): AsyncIterable<MessageShape<O>>;
}

/** Serves the methods a server calls on its clients: what generated register functions use ([Client] is one). */
export interface Registrar {
  handleUnary<I extends DescMessage, O extends DescMessage>(
    method: MethodDef<I, O>,
    handler: (request: MessageShape<I>, ctx: HandlerContext) => MessageInitShape<O> | Promise<MessageInitShape<O>>,
  ): void;
  handleOneWay<I extends DescMessage>(
    method: MethodDef<I>,
    handler: (request: MessageShape<I>, ctx: HandlerContext) => void | Promise<void>,
  ): void;
}
