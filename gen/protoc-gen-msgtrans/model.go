package main

import (
	"fmt"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	msgtransv1 "github.com/msgtrans/msgtrans-go/schema/msgtrans/v1"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The model: everything the generator decides, parsed from the descriptors
// before anything is rendered, so that every mistake in a .proto file is
// reported as an error rather than half-written output. Parsing never
// panics: whatever protogen accepted, parseFile either models or refuses
// with one line naming the file, service and method.

type fileModel struct {
	file     *protogen.File
	services []*serviceModel
	// imports are the other Go packages the generated file refers to, with
	// the name each is imported as (see assignImports in names.go).
	imports []goImport
}

type serviceModel struct {
	svc        *protogen.Service
	toClient   bool // DIRECTION_SERVER_TO_CLIENT
	deprecated bool
	names      names
	methods    []*methodModel
}

type methodModel struct {
	m          *protogen.Method
	fullName   string // chat.v1.ChatService.Join
	route      uint32
	kind       methodKind
	deprecated bool
	// Identifiers of the method's constants and its runtime.Method.
	fullNameConst, routeConst, methodVar string
}

// methodKind says how a method is called. It mirrors runtime.MethodKind,
// which the generator may not import (it links wire, never the runtime).
type methodKind uint8

const (
	kindUnary        methodKind = iota + 1 // one request, one response
	kindOneWay                             // (msgtrans.v1.method).one_way: one message, no response
	kindServerStream                       // rpc M(Req) returns (stream Resp)
	kindClientStream                       // rpc M(stream Req) returns (Resp)
	kindBidiStream                         // rpc M(stream Req) returns (stream Resp)
)

func (k methodKind) String() string {
	switch k {
	case kindUnary:
		return "unary"
	case kindOneWay:
		return "one-way"
	case kindServerStream:
		return "server-streaming"
	case kindClientStream:
		return "client-streaming"
	case kindBidiStream:
		return "bidirectional-streaming"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// runtimeKind is the name of the runtime.MethodKind constant of k.
func (k methodKind) runtimeKind() string {
	switch k {
	case kindUnary:
		return "MethodUnary"
	case kindOneWay:
		return "MethodOneWay"
	case kindServerStream:
		return "MethodServerStream"
	case kindClientStream:
		return "MethodClientStream"
	case kindBidiStream:
		return "MethodBidiStream"
	}
	return ""
}

// hasResponse reports whether calls of the kind get a response message.
func (k methodKind) hasResponse() bool { return k != kindOneWay }

// takesRequest reports whether a handler of the kind is given one request
// message (a server stream's is the one it was opened with).
func (k methodKind) takesRequest() bool {
	return k == kindUnary || k == kindOneWay || k == kindServerStream
}

// returnsResponse reports whether a handler of the kind returns one
// response message (a client stream's ends the stream).
func (k methodKind) returnsResponse() bool { return k == kindUnary || k == kindClientStream }

// isStream reports whether the kind is one of the streams.
func (k methodKind) isStream() bool { return k >= kindServerStream && k <= kindBidiStream }

// streamType returns the runtime's generic type a handler (serverSide: the
// side the stream was opened to) or an opener of a stream of kind k uses,
// or "" for the kinds that are no streams.
func (k methodKind) streamType(opener bool) string {
	switch {
	case k == kindServerStream && opener:
		return "ServerStreamClient"
	case k == kindServerStream:
		return "ServerStream"
	case k == kindClientStream && opener:
		return "ClientStreamClient"
	case k == kindClientStream:
		return "ClientStream"
	case k == kindBidiStream && opener:
		return "BidiStreamClient"
	case k == kindBidiStream:
		return "BidiStream"
	}
	return ""
}

func parseFile(f *protogen.File) (*fileModel, error) {
	fm := &fileModel{file: f}
	for _, svc := range f.Services {
		sm, err := parseService(f, svc)
		if err != nil {
			return nil, err
		}
		fm.services = append(fm.services, sm)
	}
	return fm, nil
}

func parseService(f *protogen.File, svc *protogen.Service) (*serviceModel, error) {
	sm := &serviceModel{svc: svc}
	if so, ok := svc.Desc.Options().(*descriptorpb.ServiceOptions); ok {
		sm.deprecated = so.GetDeprecated()
	}
	if so, ok := proto.GetExtension(svc.Desc.Options(), msgtransv1.E_Service).(*msgtransv1.ServiceOptions); ok && so != nil {
		switch so.GetDirection() {
		case msgtransv1.Direction_DIRECTION_UNSPECIFIED, msgtransv1.Direction_DIRECTION_CLIENT_TO_SERVER:
		case msgtransv1.Direction_DIRECTION_SERVER_TO_CLIENT:
			sm.toClient = true
		default:
			return nil, fmt.Errorf("%s: service %s: unknown direction %d", filePath(f), svc.Desc.Name(), so.GetDirection())
		}
	}
	goNames := map[string]string{} // Go method name -> proto method name
	for _, m := range svc.Methods {
		mm, err := parseMethod(f, svc, m)
		if err != nil {
			return nil, err
		}
		if other, dup := goNames[m.GoName]; dup {
			return nil, fmt.Errorf("%s: service %s, method %s: its Go name %s is also the Go name of method %s; rename one of them",
				filePath(f), svc.Desc.Name(), m.Desc.Name(), m.GoName, other)
		}
		goNames[m.GoName] = string(m.Desc.Name())
		sm.methods = append(sm.methods, mm)
	}
	return sm, nil
}

func parseMethod(f *protogen.File, svc *protogen.Service, m *protogen.Method) (*methodModel, error) {
	where := fmt.Sprintf("%s: service %s, method %s", filePath(f), svc.Desc.Name(), m.Desc.Name())
	mm := &methodModel{
		m:        m,
		fullName: string(m.Desc.FullName()),
		route:    wire.RouteID(string(m.Desc.FullName())),
		kind:     kindUnary,
	}
	switch {
	case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
		mm.kind = kindBidiStream
	case m.Desc.IsStreamingClient():
		mm.kind = kindClientStream
	case m.Desc.IsStreamingServer():
		mm.kind = kindServerStream
	}
	if mo, ok := m.Desc.Options().(*descriptorpb.MethodOptions); ok {
		mm.deprecated = mo.GetDeprecated()
	}
	if mo, ok := proto.GetExtension(m.Desc.Options(), msgtransv1.E_Method).(*msgtransv1.MethodOptions); ok && mo != nil {
		if mo.GetRouteId() != 0 {
			mm.route = mo.GetRouteId()
		}
		if mo.GetOneWay() {
			if mm.kind != kindUnary {
				return nil, fmt.Errorf("%s: a %s rpc cannot be one-way; drop (msgtrans.v1.method).one_way or the stream keyword", where, mm.kind)
			}
			mm.kind = kindOneWay
		}
	}
	if mm.route == wire.ControlRoute {
		return nil, fmt.Errorf("%s: route id 0 is reserved for control packets; set (msgtrans.v1.method).route_id", where)
	}
	return mm, nil
}

// checkRoutes refuses two methods with one route id among all the files
// generated together (they may be served by one server).
func checkRoutes(models []*fileModel) error {
	seen := map[uint32]string{}
	for _, fm := range models {
		for _, sm := range fm.services {
			for _, mm := range sm.methods {
				if other, dup := seen[mm.route]; dup {
					return fmt.Errorf("%s: service %s, method %s: route id %#08x of %s collides with %s; give one of them another (msgtrans.v1.method).route_id",
						filePath(fm.file), sm.svc.Desc.Name(), mm.m.Desc.Name(), mm.route, mm.fullName, other)
				}
				seen[mm.route] = mm.fullName
			}
		}
	}
	return nil
}

// messages returns the message types m's generated code refers to: the
// request, and the response of kinds that have one.
func (mm *methodModel) messages() []*protogen.Message {
	if mm.kind.hasResponse() {
		return []*protogen.Message{mm.m.Input, mm.m.Output}
	}
	return []*protogen.Message{mm.m.Input}
}

// filePath is the file's path as errors name it: on one line, whatever
// the descriptor holds.
func filePath(f *protogen.File) string { return cleanLine(f.Desc.Path()) }
