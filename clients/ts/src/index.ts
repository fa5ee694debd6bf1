// @msgtrans/client: the msgtrans wire v1 client for browsers and Node, over
// WebSocket. See README.md beside this package.

export { Backoff, type BackoffOptions } from "./backoff.js";
export { Client, RefusedError, type ClientOptions, type ClientState, type ConnectOptions, type StateChange } from "./client.js";
export { canInflate, inflateZlib } from "./compress.js";
export { CONTROL_ROUTE, Control, EXT_VERSION, StreamOp, encodeExt, isTypedExt, parseExt, type Ext, type StreamField } from "./ext.js";
export type { CallOptions, Caller, HandlerContext, MethodDef, MethodKind, Registrar, StreamOptions } from "./method.js";
export { Code, MsgtransError, codeName, codeOf } from "./status.js";
export {
  SUBPROTOCOLS,
  webSocketDialer,
  type CloseInfo,
  type Connection,
  type Dialer,
  type WebSocketConstructor,
  type WebSocketDialerOptions,
  type WebSocketLike,
} from "./transport.js";
export {
  Compression,
  DEFAULT_LIMITS,
  Flags,
  HEADER_LEN,
  PacketType,
  ProtocolError,
  VERSION,
  decodePacket,
  encodePacket,
  type Limits,
  type Packet,
} from "./wire.js";
