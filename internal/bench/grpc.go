package main

import (
	"context"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// The gRPC-Go baseline: a hand-written service description (no
// protoc-gen-go-grpc) over the bench protobuf messages, encoded by gRPC's
// default proto codec, in plaintext over TCP like msgtrans's tcp://.

const (
	grpcService      = "bench.v1.GRPCBench"
	grpcCallMethod   = "/" + grpcService + "/Call"
	grpcEchoMethod   = "/" + grpcService + "/Echo"
	grpcStreamMethod = "/" + grpcService + "/Stream"
)

var grpcDesc = grpc.ServiceDesc{
	ServiceName: grpcService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			req := new(benchv1.CallRequest)
			if err := dec(req); err != nil {
				return nil, err
			}
			return &benchv1.CallResponse{Payload: req.Payload}, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Echo",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			for {
				req := new(benchv1.EchoRequest)
				if err := stream.RecvMsg(req); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(&benchv1.EchoedRequest{Payload: req.Payload}); err != nil {
					return err
				}
			}
		},
	}, {
		// Stream is BenchService.Stream: a server-streaming rpc sending
		// what the request asks for, built as the msgtrans handler builds it
		// (benchServer.Stream).
		StreamName:    "Stream",
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			req := new(benchv1.StreamRequest)
			if err := stream.RecvMsg(req); err != nil {
				return err
			}
			return streamMessages(req, func(m *benchv1.StreamResponse) error { return stream.SendMsg(m) })
		},
	}},
}

// grpcServer is a gRPC server of the bench service on loopback TCP.
type grpcServer struct {
	srv  *grpc.Server
	addr string
	done chan struct{}
}

func startGRPC() (*grpcServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &grpcServer{srv: grpc.NewServer(), addr: l.Addr().String(), done: make(chan struct{})}
	s.srv.RegisterService(&grpcDesc, struct{}{})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(l)
	}()
	return s, nil
}

func (s *grpcServer) close() {
	s.srv.Stop()
	<-s.done
}

// dialGRPC returns a client connection (one TCP connection) to addr,
// connected before it returns.
func dialGRPC(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	cc.Connect()
	for {
		s := cc.GetState()
		if s == connectivity.Ready {
			return cc, nil
		}
		if !cc.WaitForStateChange(ctx, s) {
			cc.Close()
			return nil, ctx.Err()
		}
	}
}

// grpcCall makes one unary call.
func grpcCall(ctx context.Context, cc *grpc.ClientConn, req *benchv1.CallRequest) (*benchv1.CallResponse, error) {
	resp := new(benchv1.CallResponse)
	if err := cc.Invoke(ctx, grpcCallMethod, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// grpcEchoStream opens the bidirectional echo stream.
func grpcEchoStream(ctx context.Context, cc *grpc.ClientConn) (grpc.ClientStream, error) {
	return cc.NewStream(ctx, &grpcDesc.Streams[0], grpcEchoMethod)
}

// grpcStream opens the server stream with req: its messages are then read
// with RecvMsg into *benchv1.StreamResponse.
func grpcStream(ctx context.Context, cc *grpc.ClientConn, req *benchv1.StreamRequest) (grpc.ClientStream, error) {
	st, err := cc.NewStream(ctx, &grpcDesc.Streams[1], grpcStreamMethod)
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(req); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	return st, nil
}
