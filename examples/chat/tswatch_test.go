package chat_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
)

// tsWatcher is a Node program on the TypeScript client (clients/ts) and the
// chat's generated TypeScript (web/gen): it watches a room through
// ChatService.Watch, a server stream, prints each event as a JSON line,
// leaves the loop (cancelling the stream) at a message "bye", then makes a
// unary call on the same connection and prints its answer.
const tsWatcher = `import WebSocket from "ws";
import { Client, MsgtransError } from "@msgtrans/client";
import { newChatServiceClient } from "GEN";

async function main() {
  const [url, room] = process.argv.slice(2);
  const client = new Client(url, { webSocket: WebSocket, reconnect: false });
  await client.connect();
  const chat = newChatServiceClient(client);
  for await (const ev of chat.watch({ room }, { window: 4 })) {
    const e = ev.event;
    if (e.case === "watching") console.log(JSON.stringify({ event: "watching", room: e.value.room, members: e.value.members }));
    if (e.case === "message") console.log(JSON.stringify({ event: "message", nick: e.value.nick, text: e.value.text }));
    if (e.case === "joined") console.log(JSON.stringify({ event: "joined", nick: e.value.nick }));
    if (e.case === "message" && e.value.text === "bye") break;
  }
  try {
    await chat.who({});
    console.log(JSON.stringify({ event: "who" }));
  } catch (err) {
    console.log(JSON.stringify({ event: "who", code: err instanceof MsgtransError ? err.code : -1 }));
  }
  client.close();
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
`

// TestWatchFromTypeScript: the TypeScript client reads a msgtrans-go
// server stream, the chat's Watch, over WebSocket: the first event, then
// the room's messages as they are said, more of them than its window of 4
// (so the credit it grants must reach the server), until it leaves the loop;
// the connection then still serves a call. Skipped without node or
// clients/ts/node_modules, unless E2E_REQUIRED is set (as in .ci/run).
func TestWatchFromTypeScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node")
	}
	skip := e2eSkip(t)
	node, err := exec.LookPath("node")
	if err != nil {
		skip("no node on the PATH")
	}
	ts, _ := filepath.Abs(filepath.Join("..", "..", "clients", "ts"))
	esbuild := filepath.Join(ts, "node_modules", "esbuild", "lib", "main.js")
	if _, err := os.Stat(esbuild); err != nil {
		skip("no esbuild (npm ci in clients/ts): %v", err)
	}
	gen, _ := filepath.Abs(filepath.Join("web", "gen", "chat", "v1", "chat_msgtrans.ts"))

	// One bundle of the program, the client and its dependencies, for Node.
	dir := t.TempDir()
	entry, out := filepath.Join(dir, "watch.ts"), filepath.Join(dir, "watch.cjs")
	if err := os.WriteFile(entry, []byte(strings.Replace(tsWatcher, "GEN", filepath.ToSlash(gen), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `const { build } = require(process.argv[1]);
build({ entryPoints: [process.argv[2]], outfile: process.argv[3], bundle: true, platform: "node", format: "cjs", target: "node20",
  alias: { "@msgtrans/client": process.argv[4] }, nodePaths: [process.argv[5]], external: ["bufferutil", "utf-8-validate"], logLevel: "warning" })
  .catch(() => process.exit(1));`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, node, "-e", script, esbuild, entry, out, filepath.Join(ts, "src", "index.ts"), filepath.Join(ts, "node_modules")).CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}

	certs := testcert.New()
	srv := startServer(t, certs, []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws"})
	t.Cleanup(func() { shutdown(t, srv) })
	var tcpAddr, wsAddr string
	for _, a := range srv.Addrs() {
		switch {
		case strings.HasPrefix(a, "tcp://"):
			tcpAddr = a
		case strings.HasPrefix(a, "ws://"):
			wsAddr = a
		}
	}
	const room = "tswatch"
	tom := startClient(t, tcpAddr, "tom", room, certs)
	tom.skipTo("* members of " + room + ": tom")

	cmd := exec.CommandContext(ctx, node, out, wsAddr, room)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan map[string]any, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
	}()
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the watcher ended before %s:\n%s", what, stderr.String())
			}
			return ev
		case <-time.After(wait):
			t.Fatalf("no %s from the watcher within %v:\n%s", what, wait, stderr.String())
			return nil
		}
	}

	if ev := next("first event"); ev["event"] != "watching" || ev["room"] != room {
		t.Fatalf("first event %v, want watching %s", ev, room)
	}
	// Ten messages, over twice the window: each must arrive, in order.
	var said []string
	for i := range 10 {
		said = append(said, "line "+string(rune('a'+i)))
	}
	said = append(said, "bye")
	for _, text := range said {
		tom.send(text)
	}
	for _, text := range said {
		if ev := next(text); ev["event"] != "message" || ev["nick"] != "tom" || ev["text"] != text {
			t.Fatalf("got %v, want tom's message %q", ev, text)
		}
	}
	// Out of the loop (the stream cancelled), the connection still answers:
	// who, asked by a session in no room, with a status of the server's.
	ev := next("who's answer")
	if ev["event"] != "who" {
		t.Fatalf("got %v, want who's answer", ev)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the watcher failed: %v\n%s", err, stderr.String())
	}
	t.Logf("who answered %v", ev)
}
