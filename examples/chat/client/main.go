package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatclient"
	_ "github.com/msgtrans/msgtrans-go/transports/all" // tcp, tls, ws, wss, quic
	"github.com/msgtrans/msgtrans-go/transports/ws"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: client [flags]\n\nChats on a msgtrans-go chat server: lines of standard input are messages\nor commands (/join ROOM, /leave, /nick NAME, /who, /quit, /help).\nWith -watch ROOM it only watches the room, as nobody, until Ctrl-C.\n\n")
		fs.PrintDefaults()
	}
	server := fs.String("server", "tcp://127.0.0.1:7001", "server `URL`: tcp://, tls://, ws://host:port/ws, wss://, quic://; several, comma-separated, for the nodes of a clustered chat")
	nick := fs.String("nick", defaultNick(), "your `nick`")
	room := fs.String("room", "lobby", "the `room` to join at start (empty: none)")
	watch := fs.String("watch", "", "watch this `room` read-only instead of chatting: its members, history and events, as a stream")
	insecure := fs.Bool("insecure", false, "do not verify the server's certificate (for the server's development certificate)")
	caFile := fs.String("ca", "", "verify the server's certificate against the CA certificates in this PEM `file` instead of the system's")
	verbose := fs.Bool("v", false, "log connection details and the runtime's warnings to standard error (without it: errors only)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "client: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected argument %q", fs.Arg(0))
	case *nick == "" && *watch == "":
		return usageError("-nick is empty")
	case *server == "":
		return usageError("-server is empty")
	case *insecure && *caFile != "":
		return usageError("-insecure and -ca exclude each other")
	}
	tlsConfig, err := chatclient.TLSConfig(*caFile, *insecure)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cfg := chatclient.Config{
		Server: *server,
		Nick:   *nick,
		Room:   *room,
		Watch:  *watch,
		TLS:    tlsConfig,
		Logger: newLogger(stderr, *verbose),
	}
	if err := chatclient.Run(ctx, cfg, stdin, stdout); err != nil {
		if h := hint(err); h != "" {
			fmt.Fprintf(stderr, "%v; %s\n", err, h)
		} else {
			fmt.Fprintln(stderr, err) // "chatclient: connect to …: …"
		}
		return 1
	}
	return 0
}

// newLogger returns the logger of the runtime's diagnostics, on stderr.
//
// Without -v it shows errors only. The runtime's warnings are about
// connections, and which ones a transport gives differs: a server that
// goes away without a word ends a TCP connection cleanly, while WebSocket
// reports a connection ended without a close frame and QUIC a stateless
// reset or an idle timeout. The client prints every connection change
// itself ("! connection lost (…); reconnecting"), so those warnings would
// repeat it, and on some transports only. With -v every diagnostic is
// shown, down to debug.
func newLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelError
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// hint returns advice for a failed connection whose cause a user can fix
// with a flag or the URL, or "" when there is none.
func hint(err error) string {
	var status *ws.StatusError
	if errors.As(err, &status) && status.StatusCode == http.StatusNotFound {
		return "the chat server's WebSocket path is /ws"
	}
	// tls:// and wss:// wrap the *tls.CertificateVerificationError of the
	// handshake; quic:// wraps it inside quic-go's transport error. The
	// x509 errors are for transports that return them bare.
	var verify *tls.CertificateVerificationError
	var authority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	if errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &hostname) {
		return "pass -ca FILE or -insecure"
	}
	return ""
}

// defaultNick is the user's login name, or "guest".
func defaultNick() string {
	for _, v := range []string{"USER", "USERNAME"} {
		if n := os.Getenv(v); n != "" {
			return n
		}
	}
	return "guest"
}
