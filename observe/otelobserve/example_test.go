package otelobserve_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/observe/otelobserve"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// A server and a client traced with one tracer provider: the client's span
// of a call and the server's span of its handler share a trace, joined by
// the trace context the request carries.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tel, err := otelobserve.New(otelobserve.WithTracerProvider(tp))
	if err != nil {
		panic(err)
	}

	srv, err := runtime.NewServer(append(tel.ServerOptions(), runtime.WithLogger(quiet))...)
	if err != nil {
		panic(err)
	}
	defer func() { _ = srv.Close() }()
	srv.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return m, nil
	}))
	if err := srv.Listen(context.Background(), "mem://otel-example"); err != nil {
		panic(err)
	}
	c, err := runtime.Dial(context.Background(), "mem://otel-example", append(tel.ClientOptions(), runtime.WithLogger(quiet))...)
	if err != nil {
		panic(err)
	}
	defer func() { _ = c.Close() }()

	if _, err := runtime.CallUnary[wrapperspb.StringValue](context.Background(), c, echoMethod, wrapperspb.String("hi")); err != nil {
		panic(err)
	}
	ended := spans.Ended() // the server's span ends before the response leaves
	server, client := ended[0], ended[1]
	fmt.Println(client.SpanKind(), client.Name())
	fmt.Println(server.SpanKind(), server.Name())
	fmt.Println("same trace:", server.SpanContext().TraceID() == client.SpanContext().TraceID())
	fmt.Println("server's parent is the client's span:", server.Parent().SpanID() == client.SpanContext().SpanID())
	// Output:
	// client test.v1.Otel/Echo
	// server test.v1.Otel/Echo
	// same trace: true
	// server's parent is the client's span: true
}
