package chatclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// Config configures [Run].
type Config struct {
	// Server is the server's address: tcp://host:port, ws://host:port/path,
	// quic://host:port, tls://…, wss://…. Several, separated by commas, name
	// the nodes of a clustered chat: the client connects to the first that
	// answers and, after a drop, moves on to the next. Required.
	Server string
	// Nick is the nick to join with. Required.
	Nick string
	// Room is the room to join at start; empty joins none (use /join).
	Room string
	// Watch, when set, makes the client a read-only observer of the room
	// with that name instead (see [Run]): Nick, Room and stdin are not used.
	Watch string
	// TLS verifies the server on tls://, wss:// and quic://. Nil verifies
	// against the system roots; see [TLSConfig] for the -ca and -insecure
	// flags.
	TLS *tls.Config
	// Logger receives the runtime's diagnostics (protocol errors, failed
	// reconnection attempts at debug level). Default slog.Default().
	Logger *slog.Logger
	// Reconnect is the reconnection schedule. The zero value is the
	// runtime's default: 100 ms doubling up to 10 s, with jitter, forever.
	Reconnect runtime.Backoff
	// ConnectTimeout bounds the first connection and each reconnection
	// attempt. Default [runtime.DefaultConnectTimeout].
	ConnectTimeout time.Duration
}

// Run connects to the server, joins cfg.Room as cfg.Nick, and chats: each
// line of stdin is a message or a command (/join ROOM, /leave, /nick NAME,
// /who, /quit, /help), and every event of the room is printed to stdout as
// one line (see the package documentation for the format).
//
// When the connection drops, the runtime reconnects by itself and Run joins
// the room again under the same nick; input waits meanwhile, and a command
// that found the connection down is retried once it is back.
//
// With cfg.Watch set, Run watches that room instead, joining nothing: it
// prints the room's members, its latest messages and then every event of
// the room, and watches again after a reconnection, printing only what it
// has not printed yet. It then runs until ctx is cancelled.
//
// Run returns nil at the end of stdin or on /quit, after what was sent has
// been flushed, and when ctx is cancelled. It returns an error when the
// first connection or the first join fails, when the client gives up
// reconnecting, and when stdout cannot be written. A goroutine reading
// stdin may stay blocked in stdin's Read after Run returns because of ctx,
// until that Read returns; stdin is not closed.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout io.Writer) error {
	switch {
	case cfg.Server == "":
		return errors.New("chatclient: no server address")
	case cfg.Watch != "":
		return watch(ctx, cfg, stdout)
	case cfg.Nick == "":
		return errors.New("chatclient: no nick")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &chat{
		cfg:         cfg,
		out:         newPrinter(stdout),
		reconnected: make(chan struct{}, 1),
		seen:        make(map[string]msgID),
		nick:        cfg.Nick,
	}
	rc, err := newClient(cfg, c.onEvent)
	if err != nil {
		return err
	}
	c.rc = rc
	// The handlers are in place before the connection exists, so nothing
	// the server pushes or asks can arrive before them.
	chatv1.RegisterChatEventsServiceHandler(rc, c)
	c.api = chatv1.NewChatServiceClient(rc)
	if err := rc.Connect(ctx); err != nil {
		_ = rc.Close()
		if ctx.Err() != nil {
			return nil // cancelled (Ctrl-C) while connecting
		}
		return fmt.Errorf("chatclient: connect to %s: %w", cfg.Server, err)
	}
	defer func() {
		c.closing.Store(true)
		_ = rc.Close() // flushes what is queued, such as the last messages said
	}()

	lines := make(chan string)
	readErr := make(chan error, 1)
	quit := make(chan struct{})
	defer close(quit)
	go readLines(stdin, lines, readErr, quit)

	if cfg.Room != "" {
		if err := c.join(ctx, cfg.Room, false); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !unavailable(err) {
				return fmt.Errorf("chatclient: join %s: %s", cfg.Room, errorText(err))
			}
			c.offline = true // joined once the connection is back
			c.room = cfg.Room
		}
	}
	return c.loop(ctx, lines, readErr)
}

// readLines sends each line of r to lines, then closes lines and reports
// the read error (nil at EOF). It stops early when quit is closed.
func readLines(r io.Reader, lines chan<- string, readErr chan<- error, quit <-chan struct{}) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-quit:
			return
		}
	}
	readErr <- sc.Err()
}

// msgID identifies a message of a room: its number and its time (numbers
// start again from 1 on a restarted server).
type msgID struct {
	seq  uint64
	nano int64
}

func idOf(m *chatv1.ChatMessage) msgID {
	return msgID{seq: m.Seq, nano: m.Time.AsTime().UnixNano()}
}

// chat is one running client.
type chat struct {
	cfg Config
	out *printer
	rc  *runtime.Client
	api *chatv1.ChatServiceClient

	// reconnected gets a signal each time the runtime reconnects.
	reconnected chan struct{}
	closing     atomic.Bool // Run is returning: drops are expected

	// Owned by the goroutine of Run.
	room     string           // the room we are in, or rejoin after a drop
	nick     string           // our nick
	joinedOn *runtime.Session // the connection we joined room on
	offline  bool             // a call found the connection down
	pending  *command         // the command to retry when back online

	mu   sync.Mutex
	seen map[string]msgID // the last message of each room we printed
}

// loop reads and runs commands until stdin ends, /quit, ctx ends or the
// client gives up. It does not read input while offline.
func (c *chat) loop(ctx context.Context, lines <-chan string, readErr <-chan error) error {
	for {
		var in <-chan string
		if !c.offline && c.pending == nil {
			in = lines
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.rc.Done():
			return fmt.Errorf("chatclient: %w", c.rc.Err())
		case <-c.out.failed:
			return fmt.Errorf("chatclient: write output: %w", c.out.Err())
		case <-c.reconnected:
			if c.resync(ctx) {
				return nil
			}
		case line, ok := <-in:
			if !ok {
				if err := <-readErr; err != nil {
					return fmt.Errorf("chatclient: read input: %w", err)
				}
				return nil
			}
			cmd, err := parseCommand(line)
			if err != nil {
				c.out.notice("%v", err)
				continue
			}
			if cmd.kind == cmdQuit {
				return nil
			}
			if c.room != "" && c.rc.Session() != c.joinedOn {
				// The connection changed under us and its Reconnected
				// signal is not handled yet: rejoin before anything else,
				// or the server would drop what we say.
				c.pending = &cmd
				if c.resync(ctx) {
					return nil
				}
				continue
			}
			if c.exec(ctx, cmd) {
				return nil
			}
		}
	}
}

// resync joins the room again on a new connection, then retries the
// command that found the connection down. It reports whether that command
// was /quit.
func (c *chat) resync(ctx context.Context) (quit bool) {
	if c.room != "" && c.rc.Session() != c.joinedOn {
		if err := c.join(ctx, c.room, true); err != nil {
			if unavailable(err) && ctx.Err() == nil {
				if !c.offline && c.pending != nil {
					c.out.notice("not connected; waiting to reconnect")
				}
				c.offline = true // wait for the next reconnection
				return false
			}
			c.out.notice("could not join %s again: %s", c.room, errorText(err))
			c.room = ""
		}
	}
	c.offline = false
	if cmd := c.pending; cmd != nil {
		c.pending = nil
		return c.exec(ctx, *cmd)
	}
	return false
}

// MaxTextBytes is the longest message the chat server takes, in bytes
// (chatserver.MaxTextBytes); the client refuses to send a longer one.
const MaxTextBytes = 4000

// exec runs one command and reports whether the client should quit. A
// command that finds the connection down is kept for [chat.resync].
func (c *chat) exec(ctx context.Context, cmd command) (quit bool) {
	var err error
	switch cmd.kind {
	case cmdNone:
	case cmdQuit:
		return true
	case cmdHelp:
		for _, l := range helpText {
			c.out.notice("%s", l)
		}
	case cmdSay:
		if c.room == "" {
			c.out.notice("not in a room: /join ROOM first")
			return false
		}
		if len(cmd.arg) > MaxTextBytes {
			// The server drops a longer text unread (Say is one-way):
			// say so here rather than let it vanish.
			c.out.notice("message not sent: %d bytes, at most %d", len(cmd.arg), MaxTextBytes)
			return false
		}
		// One-way: the message comes back as a RoomMessage, like everyone's.
		err = c.api.Say(ctx, &chatv1.SayRequest{Room: c.room, Text: cmd.arg})
	case cmdJoin:
		if cmd.arg == c.room && c.rc.Session() == c.joinedOn {
			c.out.notice("already in %s", c.room)
			return false
		}
		err = c.join(ctx, cmd.arg, false)
	case cmdLeave:
		var resp *chatv1.LeaveResponse
		if resp, err = c.api.Leave(ctx, &chatv1.LeaveRequest{}); err == nil {
			c.room, c.joinedOn = "", nil
			if resp.Room == "" {
				c.out.notice("not in a room")
			}
		}
	case cmdNick:
		var resp *chatv1.NickResponse
		if resp, err = c.api.Nick(ctx, &chatv1.NickRequest{Nick: cmd.arg}); err == nil {
			c.nick = resp.Nick
			if c.room == "" { // in a room, the NickChanged event says it
				c.out.line(formatNickChanged(resp.PreviousNick, resp.Nick))
			}
		}
	case cmdWho:
		var resp *chatv1.WhoResponse
		if resp, err = c.api.Who(ctx, &chatv1.WhoRequest{}); err == nil {
			c.out.line(formatMembers(resp.Room, resp.Members))
		}
	}
	switch {
	case err == nil:
	case unavailable(err) && ctx.Err() == nil:
		c.offline, c.pending = true, &cmd
		c.out.notice("not connected; waiting to reconnect")
	default:
		c.out.notice("%s", errorText(err))
	}
	return false
}

// join joins room under our nick and prints the room's history and
// members. On a rejoin after a drop (resume), history we printed already is
// skipped.
func (c *chat) join(ctx context.Context, room string, resume bool) error {
	on := c.rc.Session()
	c.out.hold(room)
	resp, err := c.api.Join(ctx, &chatv1.JoinRequest{Room: room, Nick: c.nick})
	if err != nil {
		c.out.release("", nil)
		return err
	}
	history := resp.History
	if resume && room == c.room {
		history = c.unseen(room, history)
	}
	c.room, c.nick, c.joinedOn = resp.Room, resp.Nick, on
	lines := make([]string, 0, len(history)+1)
	for _, m := range history {
		lines = append(lines, formatHistory(m))
	}
	if n := len(history); n > 0 {
		c.noteSeen(history[n-1])
	}
	lines = append(lines, formatMembers(resp.Room, resp.Members))
	c.out.release(resp.Nick, lines)
	return nil
}

// unseen returns the part of history after the last message of room we
// printed, or all of it when that message is not in it.
func (c *chat) unseen(room string, history []*chatv1.ChatMessage) []*chatv1.ChatMessage {
	c.mu.Lock()
	last, ok := c.seen[room]
	c.mu.Unlock()
	if !ok {
		return history
	}
	for i, m := range history {
		if idOf(m) == last {
			return history[i+1:]
		}
	}
	return history
}

func (c *chat) noteSeen(m *chatv1.ChatMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[m.Room] = idOf(m)
}

// onEvent reports connection changes. The runtime calls it from the
// connection's goroutine, before that connection reads anything, so it only
// prints and signals: the rejoin runs on Run's goroutine.
func (c *chat) onEvent(e runtime.Event) {
	switch e.Kind {
	case runtime.ConnectionClosed:
		if !c.closing.Load() {
			c.out.notice("connection lost (%s); reconnecting", reasonText(e.Err))
		}
	case runtime.Reconnected:
		c.out.notice("reconnected to %s", c.rc.Addr())
		select {
		case c.reconnected <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

// The methods below implement chatv1.ChatEventsServiceHandler. The runtime
// runs the one-way ones on the connection's read goroutine, in order.

// RoomMessage prints a message posted to our room.
func (c *chat) RoomMessage(_ context.Context, req *chatv1.RoomMessageRequest) error {
	m := req.GetMessage()
	if m == nil {
		return nil
	}
	c.noteSeen(m)
	c.out.event(m.Room, formatMessage(m), "")
	return nil
}

// MemberJoined prints an arrival in our room.
func (c *chat) MemberJoined(_ context.Context, req *chatv1.MemberJoinedRequest) error {
	c.out.event(req.Room, formatJoined(req.Room, req.Nick), req.Nick)
	return nil
}

// MemberLeft prints a departure from our room.
func (c *chat) MemberLeft(_ context.Context, req *chatv1.MemberLeftRequest) error {
	c.out.event(req.Room, formatLeft(req.Room, req.Nick), "")
	return nil
}

// NickChanged prints a nick change in our room.
func (c *chat) NickChanged(_ context.Context, req *chatv1.NickChangedRequest) error {
	c.out.event(req.Room, formatNickChanged(req.PreviousNick, req.Nick), "")
	return nil
}

// Ping answers the server's liveness check.
func (c *chat) Ping(_ context.Context, req *chatv1.PingRequest) (*chatv1.PingResponse, error) {
	return &chatv1.PingResponse{Seq: req.Seq}, nil
}

var _ chatv1.ChatEventsServiceHandler = (*chat)(nil)

// unavailable reports whether err says the connection is down.
func unavailable(err error) bool { return runtime.CodeOf(err) == runtime.CodeUnavailable }

// errorText is err for the user: the server's message without the code.
func errorText(err error) string {
	var e *runtime.Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return strings.TrimPrefix(err.Error(), "msgtrans: ")
}

func reasonText(err error) string {
	if err == nil {
		return "closed"
	}
	return strings.TrimPrefix(err.Error(), "msgtrans: ")
}
