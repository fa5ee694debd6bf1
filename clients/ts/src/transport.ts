// The WebSocket transport: one packet per binary message. It works with the
// browser's WebSocket and, in Node, with the ws package's (Node 20 has no
// global WebSocket without a flag).

/** The part of the WebSocket API this transport uses; the browser's and the ws package's both have it. */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Why a connection ended. */
export interface CloseInfo {
  /** The WebSocket close code (1006: no close frame, the connection dropped). */
  code: number;
  /** The reason the closing side gave, if any. */
  reason: string;
}

/** A packet connection: what the client needs of a transport. */
export interface Connection {
  /** The subprotocol the server selected ("" for none). */
  readonly protocol: string;
  /** Sends one encoded packet. */
  send(packet: Uint8Array): void;
  /** Closes the connection; onClose follows. */
  close(code?: number, reason?: string): void;
  /** Called with each packet received, in order. */
  onPacket: (packet: Uint8Array) => void;
  /** Called once when the connection has ended, whoever ended it. */
  onClose: (info: CloseInfo) => void;
}

/** Opens a connection to url; rejects if it cannot, or when signal aborts. */
export type Dialer = (url: string, signal: AbortSignal) => Promise<Connection>;

/** The subprotocols a msgtrans client offers: the server selects one (docs/wire.md). */
export const SUBPROTOCOLS: readonly string[] = ["msgtrans.v1", "msgtrans"];

export interface WebSocketDialerOptions {
  /** The WebSocket implementation. Default: globalThis.WebSocket (browsers; Node with --experimental-websocket or 22+). */
  webSocket?: WebSocketConstructor;
  /** Subprotocols to offer. Default [SUBPROTOCOLS]; [] offers none. */
  protocols?: readonly string[];
}

/** A text message is no part of the protocol: the connection is closed with 1002 (protocol error). */
export const CLOSE_PROTOCOL_ERROR = 1002;

/** Returns a [Dialer] that opens WebSocket connections. */
export function webSocketDialer(opts: WebSocketDialerOptions = {}): Dialer {
  return (url, signal) =>
    new Promise<Connection>((resolve, reject) => {
      const WS = opts.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!WS) {
        reject(new Error("msgtrans: no WebSocket implementation: pass the ws package's WebSocket as the webSocket option"));
        return;
      }
      let ws: WebSocketLike;
      try {
        const protocols = [...(opts.protocols ?? SUBPROTOCOLS)];
        ws = protocols.length > 0 ? new WS(url, protocols) : new WS(url);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      ws.binaryType = "arraybuffer";
      let opened = false;
      const onAbort = () => {
        ws.close();
        reject(signal.reason instanceof Error ? signal.reason : new Error("msgtrans: dial aborted"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const conn: Connection = {
        get protocol() {
          return ws.protocol;
        },
        send: (b) => ws.send(b),
        close: (code, reason) => ws.close(code, reason),
        onPacket: () => {},
        onClose: () => {},
      };
      ws.onopen = () => {
        opened = true;
        signal.removeEventListener("abort", onAbort);
        resolve(conn);
      };
      ws.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) {
          conn.onPacket(new Uint8Array(ev.data));
        } else if (ArrayBuffer.isView(ev.data)) {
          conn.onPacket(new Uint8Array(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength));
        } else {
          ws.close(CLOSE_PROTOCOL_ERROR, "text message");
        }
      };
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        if (!opened) {
          signal.removeEventListener("abort", onAbort);
          const why = ev.reason ? `${ev.code} ${ev.reason}` : `${ev.code}`;
          reject(new Error(`msgtrans: dial ${url}: connection closed (${why})`));
          return;
        }
        conn.onClose({ code: ev.code, reason: ev.reason });
      };
    });
}
