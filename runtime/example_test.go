package runtime_test

import (
	"context"
	"fmt"
	"log"

	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/mem"
	"github.com/msgtrans/msgtrans-go/wire"
)

// A server with one request handler and a client calling it, over the
// in-memory transport. Changing the two addresses to tcp://, ws:// or
// quic:// changes nothing else.
func Example() {
	ctx := context.Background()
	const bizEcho, bizNews = 1, 2

	srv, err := runtime.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	srv.Handle(bizEcho, runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		if err := srv.Join("lobby", s); err != nil {
			return nil, err
		}
		if _, err := srv.Push(context.Background(), runtime.ToGroup("lobby"), wire.NewText(bizNews, "welcome to the lobby")); err != nil {
			return nil, err
		}
		return p.Reply([]byte("echo: " + p.Text())), nil
	}))
	if err := srv.Listen(ctx, "mem://example"); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	c, err := runtime.Dial(ctx, "mem://example")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	news := make(chan string, 1)
	c.Handle(bizNews, runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		news <- p.Text()
		return nil, nil
	}))

	resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("hello")))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Text())
	fmt.Println(<-news)
	// Output:
	// echo: hello
	// welcome to the lobby
}
