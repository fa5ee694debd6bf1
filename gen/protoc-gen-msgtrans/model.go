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
// reported as an error rather than half-written output.

type fileModel struct {
	file     *protogen.File
	services []*serviceModel
}

type serviceModel struct {
	svc      *protogen.Service
	toClient bool // DIRECTION_SERVER_TO_CLIENT
	names    names
	methods  []*methodModel
}

type methodModel struct {
	m          *protogen.Method
	fullName   string // chat.v1.Chat.Join
	route      uint32
	oneWay     bool
	deprecated bool
	// Identifiers of the method's constants and its runtime.Method.
	fullNameConst, routeConst, methodVar string
}

// names computes every identifier generated for one service, once.
type names struct {
	Base         string // Chat
	Client       string // ChatClient
	NewClient    string // NewChatClient
	Handler      string // ChatHandler
	Unimpl       string // UnimplementedChatHandler
	Register     string // RegisterChatHandler
	Pusher       string // ChatPusher (server-to-client services)
	NewPusher    string // NewChatPusher
	ServiceConst string // ChatName
}

func newNames(svc *protogen.Service) names {
	b := svc.GoName
	return names{
		Base:         b,
		Client:       b + "Client",
		NewClient:    "New" + b + "Client",
		Handler:      b + "Handler",
		Unimpl:       "Unimplemented" + b + "Handler",
		Register:     "Register" + b + "Handler",
		Pusher:       b + "Pusher",
		NewPusher:    "New" + b + "Pusher",
		ServiceConst: b + "Name",
	}
}

func parseFile(f *protogen.File) (*fileModel, error) {
	fm := &fileModel{file: f}
	for _, svc := range f.Services {
		sm := &serviceModel{svc: svc, names: newNames(svc)}
		if so, ok := proto.GetExtension(svc.Desc.Options(), msgtransv1.E_Service).(*msgtransv1.ServiceOptions); ok && so != nil {
			switch so.GetDirection() {
			case msgtransv1.Direction_DIRECTION_UNSPECIFIED, msgtransv1.Direction_DIRECTION_CLIENT_TO_SERVER:
			case msgtransv1.Direction_DIRECTION_SERVER_TO_CLIENT:
				sm.toClient = true
			default:
				return nil, fmt.Errorf("%s: service %s: unknown direction %d", f.Desc.Path(), svc.Desc.Name(), so.GetDirection())
			}
		}
		for _, m := range svc.Methods {
			mm, err := parseMethod(f, svc, m)
			if err != nil {
				return nil, err
			}
			sm.methods = append(sm.methods, mm)
		}
		fm.services = append(fm.services, sm)
	}
	return fm, nil
}

func parseMethod(f *protogen.File, svc *protogen.Service, m *protogen.Method) (*methodModel, error) {
	where := fmt.Sprintf("%s: service %s, method %s", f.Desc.Path(), svc.Desc.Name(), m.Desc.Name())
	if m.Desc.IsStreamingClient() || m.Desc.IsStreamingServer() {
		return nil, fmt.Errorf("%s: streaming rpcs are not supported yet; use request/response or one-way methods", where)
	}
	mm := &methodModel{
		m:             m,
		fullName:      string(m.Desc.FullName()),
		fullNameConst: svc.GoName + m.GoName + "FullMethod",
		routeConst:    svc.GoName + m.GoName + "Route",
		methodVar:     lowerFirst(svc.GoName) + m.GoName + "Method",
	}
	mm.route = wire.RouteID(mm.fullName)
	if mo, ok := m.Desc.Options().(*descriptorpb.MethodOptions); ok {
		mm.deprecated = mo.GetDeprecated()
	}
	if mo, ok := proto.GetExtension(m.Desc.Options(), msgtransv1.E_Method).(*msgtransv1.MethodOptions); ok && mo != nil {
		if mo.GetRouteId() != 0 {
			mm.route = mo.GetRouteId()
		}
		mm.oneWay = mo.GetOneWay()
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
					return fmt.Errorf("%s: route id %#08x of %s collides with %s; give one of them another (msgtrans.v1.method).route_id",
						fm.file.Desc.Path(), mm.route, mm.fullName, other)
				}
				seen[mm.route] = mm.fullName
			}
		}
	}
	return nil
}

// Rendering.
