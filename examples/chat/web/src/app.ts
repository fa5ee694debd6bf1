// The chat in a browser: the same rooms, nicks, history and presence as the
// terminal client, through the generated TypeScript (gen/chat/v1) and the
// msgtrans TypeScript client. No framework: the page is a few elements
// updated by hand.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Client, Code, MsgtransError, type StateChange } from "@msgtrans/client";
import { newChatServiceClient, registerChatEventsServiceHandler, type ChatEventsServiceHandler } from "../gen/chat/v1/chat_msgtrans.js";
import type { ChatMessage } from "../gen/chat/v1/chat_pb.js";

/** What the server tells the page at config.json: where its WebSocket listeners are. */
interface PageConfig {
  servers: string[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = $<HTMLOListElement>("log");
const status = $<HTMLSpanElement>("status");
const membersEl = $<HTMLUListElement>("members");
const roomTitle = $<HTMLSpanElement>("room-title");
const joinForm = $<HTMLFormElement>("join");
const nickInput = $<HTMLInputElement>("nick");
const roomInput = $<HTMLInputElement>("room");
const sayForm = $<HTMLFormElement>("say");
const textInput = $<HTMLInputElement>("text");

/** One line of the log; kind styles it, data attributes let tests find it. */
function line(kind: "msg" | "history" | "event" | "notice" | "error", text: string, data: Record<string, string> = {}): void {
  const li = document.createElement("li");
  li.className = kind;
  for (const [k, v] of Object.entries(data)) li.dataset[k] = v;
  li.textContent = text;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function timeOf(m: ChatMessage): string {
  return m.time ? timestampDate(m.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
}

function message(m: ChatMessage, fromHistory: boolean): void {
  const data = { nick: m.nick, text: m.text, room: m.room, seq: String(m.seq) };
  const li = document.createElement("li");
  li.className = fromHistory ? "history" : "msg";
  Object.assign(li.dataset, data);
  const when = document.createElement("time");
  when.textContent = timeOf(m);
  const who = document.createElement("b");
  who.textContent = m.nick;
  li.append(when, " ", who, " ", m.text);
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

let members: string[] = [];
function showMembers(list: string[]): void {
  members = [...list].sort();
  membersEl.replaceChildren(
    ...members.map((n) => {
      const li = document.createElement("li");
      li.textContent = n;
      if (n === me.nick) li.className = "me";
      return li;
    }),
  );
}

/** Who this page is and where: kept across reloads. */
const me = {
  nick: localStorage.getItem("msgtrans-chat-nick") || `guest${Math.floor(Math.random() * 9000 + 1000)}`,
  room: decodeURIComponent(location.hash.slice(1)) || localStorage.getItem("msgtrans-chat-room") || "lobby",
  joined: "", // the room the server has us in
};
nickInput.value = me.nick;
roomInput.value = me.room;

/** The last message seen per room (its time and number), so a rejoin prints only what is new. */
const seen = new Map<string, { ms: number; seq: bigint }>();
function isNew(m: ChatMessage): boolean {
  const last = seen.get(m.room);
  if (!last) return true;
  const ms = m.time ? timestampDate(m.time).getTime() : 0;
  return ms > last.ms || (ms === last.ms && m.seq > last.seq);
}
function noteSeen(m: ChatMessage): void {
  seen.set(m.room, { ms: m.time ? timestampDate(m.time).getTime() : 0, seq: m.seq });
}

/**
 * Events that arrive while a Join waits for its response are held: the
 * joiner's own arrival is shown first, then the history and the members,
 * then the rest, as the terminal client does.
 */
let holding: { fn: () => void; selfJoin: boolean }[] | undefined;
function event(fn: () => void, selfJoin = false): void {
  if (holding) holding.push({ fn, selfJoin });
  else fn();
}

const handler: ChatEventsServiceHandler = {
  roomMessage(req) {
    const m = req.message;
    if (!m) return;
    event(() => {
      if (!isNew(m)) return;
      noteSeen(m);
      message(m, false);
    });
  },
  memberJoined(req) {
    event(
      () => {
        line("event", `${req.nick} joined ${req.room}`, { event: "joined", nick: req.nick });
        if (req.room === me.joined && !members.includes(req.nick)) showMembers([...members, req.nick]);
      },
      holding !== undefined && holding.length === 0,
    );
  },
  memberLeft(req) {
    event(() => {
      line("event", `${req.nick} left ${req.room}`, { event: "left", nick: req.nick });
      const i = members.indexOf(req.nick);
      if (req.room === me.joined && i >= 0) showMembers(members.filter((_, k) => k !== i));
    });
  },
  nickChanged(req) {
    event(() => {
      line("event", `${req.previousNick} is now known as ${req.nick}`, { event: "nick", nick: req.nick });
      const i = members.indexOf(req.previousNick);
      if (req.room === me.joined && i >= 0) showMembers(members.map((n, k) => (k === i ? req.nick : n)));
    });
  },
  ping(req) {
    return { seq: req.seq };
  },
};

function describe(err: unknown): string {
  if (err instanceof MsgtransError) return err.rawMessage || err.message;
  return err instanceof Error ? err.message : String(err);
}

async function main(): Promise<void> {
  let cfg: PageConfig;
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    cfg = (await res.json()) as PageConfig;
  } catch (err) {
    line("error", `cannot read the page's configuration: ${describe(err)}`);
    return;
  }
  if (!cfg.servers?.length) {
    line("error", "the server has no WebSocket listener (start it with a ws:// or wss:// address in -listen)");
    return;
  }
  const client = new Client(cfg.servers, { requestTimeoutMs: 10_000 });
  registerChatEventsServiceHandler(client, handler);
  const chat = newChatServiceClient(client);

  const showState = (c: StateChange) => {
    document.body.dataset.state = c.state;
    switch (c.state) {
      case "connecting":
        status.textContent = "connecting…";
        break;
      case "open":
        status.textContent = "connected";
        break;
      case "reconnecting":
        status.textContent = "reconnecting…";
        status.title = c.error ? describe(c.error) : "";
        break;
      case "closed":
        status.textContent = "disconnected";
        if (c.error) line("error", `disconnected: ${describe(c.error)}`);
        break;
      default:
        status.textContent = c.state;
    }
  };
  client.onStateChange(showState);
  let dropped = false;
  client.onStateChange((c) => {
    if (c.state === "reconnecting" && !dropped) {
      dropped = true;
      line("notice", `${c.error ? describe(c.error) : "connection lost"}; reconnecting…`);
    }
  });

  const join = async (room: string, nick: string, again: boolean) => {
    holding = [];
    try {
      const resp = await chat.join({ room, nick });
      me.room = me.joined = resp.room;
      me.nick = resp.nick;
      localStorage.setItem("msgtrans-chat-nick", me.nick);
      localStorage.setItem("msgtrans-chat-room", me.room);
      history.replaceState(null, "", `#${encodeURIComponent(me.room)}`);
      roomTitle.textContent = resp.room;
      nickInput.value = me.nick;
      roomInput.value = me.room;
      if (!again) line("notice", `you are ${resp.nick} in ${resp.room}`);
      const own = holding?.[0]?.selfJoin ? holding.shift() : undefined;
      own?.fn();
      for (const m of resp.history) {
        if (!isNew(m)) continue;
        noteSeen(m);
        message(m, true);
      }
      showMembers(resp.members);
      line("event", `members of ${resp.room}: ${resp.members.join(", ")}`, { event: "members" });
    } finally {
      const held = holding ?? [];
      holding = undefined;
      for (const h of held) h.fn();
    }
  };

  client.onReconnected(() => {
    dropped = false;
    line("notice", `reconnected to ${client.url}`);
    if (me.joined) {
      join(me.joined, me.nick, true).catch((err) => line("error", `rejoining ${me.joined}: ${describe(err)}`));
    }
  });

  joinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const room = roomInput.value.trim();
    const nick = nickInput.value.trim();
    if (!room) return;
    join(room, nick, false).catch((err) => line("error", describe(err)));
  });

  sayForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = textInput.value.trim();
    if (!text) return;
    command(text)
      .then(() => {
        textInput.value = "";
      })
      .catch((err) => line("error", describe(err)));
  });

  /** A line typed in the box: a message, or a command as in the terminal client. */
  const command = async (text: string) => {
    const [word, ...rest] = text.split(/\s+/);
    const arg = rest.join(" ");
    switch (word) {
      case "/who": {
        const resp = await chat.who({});
        showMembers(resp.members);
        line("event", `members of ${resp.room}: ${resp.members.join(", ")}`, { event: "members" });
        return;
      }
      case "/nick": {
        if (!arg) throw new Error("usage: /nick NAME");
        const resp = await chat.nick({ nick: arg });
        me.nick = resp.nick;
        nickInput.value = me.nick;
        localStorage.setItem("msgtrans-chat-nick", me.nick);
        return;
      }
      case "/join":
        if (!arg) throw new Error("usage: /join ROOM");
        await join(arg, me.nick, false);
        return;
      case "/leave": {
        const resp = await chat.leave({});
        me.joined = "";
        roomTitle.textContent = "no room";
        showMembers([]);
        if (resp.room) line("notice", `you left ${resp.room}`);
        return;
      }
      case "/help":
        line("notice", "commands: /join ROOM, /nick NAME, /who, /leave; anything else is a message to the room");
        return;
    }
    if (word?.startsWith("/")) throw new Error(`unknown command ${word} (try /help)`);
    if (!me.joined) throw new Error("join a room first");
    await chat.say({ room: me.joined, text });
  };

  try {
    await client.connect({ wait: true });
  } catch (err) {
    line("error", `cannot connect: ${describe(err)}`);
    return;
  }
  try {
    await join(me.room, me.nick, false);
  } catch (err) {
    const code = err instanceof MsgtransError ? err.code : Code.Unknown;
    line("error", `joining ${me.room}: ${describe(err)}${code === Code.InvalidArgument ? " (change the room or nick above)" : ""}`);
  }
  textInput.focus();
}

void main();
