package main

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	msgtransv1 "github.com/msgtrans/msgtrans-go/schema/msgtrans/v1"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Import paths of the packages generated code uses.
const (
	runtimePkg = "github.com/msgtrans/msgtrans-go/runtime"
	contextPkg = "context"
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

// generate writes one <file>_msgtrans.pb.go for each file to generate that
// has services.
func generate(gen *protogen.Plugin) error {
	var models []*fileModel
	for _, f := range gen.Files {
		if !f.Generate || len(f.Services) == 0 {
			continue
		}
		m, err := parseFile(f)
		if err != nil {
			return err
		}
		models = append(models, m)
	}
	if err := checkRoutes(models); err != nil {
		return err
	}
	for _, m := range models {
		out := gen.NewGeneratedFile(m.file.GeneratedFilenamePrefix+"_msgtrans.pb.go", m.file.GoImportPath)
		if err := renderFile(m).Render(out); err != nil {
			return fmt.Errorf("%s: render: %w", m.file.Desc.Path(), err)
		}
	}
	return nil
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

func renderFile(fm *fileModel) *jen.File {
	f := fm.file
	out := jen.NewFilePathName(string(f.GoImportPath), string(f.GoPackageName))
	out.HeaderComment("Code generated by protoc-gen-msgtrans. DO NOT EDIT.")
	out.HeaderComment("versions:")
	out.HeaderComment("\tprotoc-gen-msgtrans " + version)
	out.HeaderComment("source: " + f.Desc.Path())
	out.ImportName(runtimePkg, "runtime")
	out.ImportName(contextPkg, "context")
	for _, sm := range fm.services {
		for _, mm := range sm.methods {
			for _, msg := range []*protogen.Message{mm.m.Input, mm.m.Output} {
				if msg.GoIdent.GoImportPath != f.GoImportPath {
					out.ImportName(string(msg.GoIdent.GoImportPath), packageName(msg))
				}
			}
		}
	}

	out.Comment("This is a compile-time assertion that this generated file is compatible")
	out.Comment("with the msgtrans runtime it is compiled against.")
	out.Const().Id("_").Op("=").Qual(runtimePkg, "SupportPackageIsVersion1")

	for _, sm := range fm.services {
		generateConstants(out, sm)
		if sm.toClient {
			generatePusher(out, sm)
			generateHandler(out, sm, false)
		} else {
			generateClient(out, sm)
			generateHandler(out, sm, true)
		}
	}
	return out
}

// packageName is the Go package name protoc-gen-go gives msg's file.
func packageName(msg *protogen.Message) string {
	p := string(msg.GoIdent.GoImportPath)
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[i+1:]
	}
	return strings.NewReplacer("-", "_", ".", "_").Replace(p)
}

func ident(id protogen.GoIdent) *jen.Statement { return jen.Qual(string(id.GoImportPath), id.GoName) }

func rt(name string) *jen.Statement { return jen.Qual(runtimePkg, name) }

// lowerFirst returns s with its first letter in lower case (generated Go
// names start with an ASCII capital).
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func ctxParam() *jen.Statement { return jen.Id("ctx").Qual(contextPkg, "Context") }

// commenter is a jen.File or jen.Group: something comment lines go into.
type commenter interface {
	Comment(string) *jen.Statement
}

// doc writes a doc comment: the first paragraph, then the proto comment
// (when there is one, unless it is the first paragraph already), then the
// Deprecated paragraph of a deprecated method.
func doc(out commenter, first string, c protogen.Comments, mm *methodModel) {
	lines := strings.Split(first, "\n")
	if proto := protoComment(c); len(proto) > 0 {
		if first == "" {
			lines = proto
		} else {
			lines = append(append(lines, ""), proto...)
		}
	}
	if mm != nil && mm.deprecated {
		lines = append(lines, "", "Deprecated: do not use.")
	}
	for _, l := range lines {
		out.Comment(l)
	}
}

// protoComment returns the lines of a leading proto comment.
func protoComment(c protogen.Comments) []string {
	text := strings.TrimSpace(string(c))
	if text == "" {
		return nil
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.TrimPrefix(l, " "), " ")
	}
	return lines
}

// methodDoc documents a method by its proto comment when it has one
// (which by convention starts with the method's name), else by fallback.
func methodDoc(out commenter, mm *methodModel, fallback string) {
	if len(protoComment(mm.m.Comments.Leading)) > 0 {
		fallback = ""
	}
	doc(out, fallback, mm.m.Comments.Leading, mm)
}

func generateConstants(out *jen.File, sm *serviceModel) {
	out.Commentf("%s is the fully-qualified name of the %s service.", sm.names.ServiceConst, sm.svc.Desc.Name())
	out.Const().Id(sm.names.ServiceConst).Op("=").Lit(string(sm.svc.Desc.FullName()))
	out.Line()
	out.Comment("Full names and route ids of the " + string(sm.svc.Desc.Name()) + " methods. A route id travels in each")
	out.Comment("typed packet's ext header and selects the handler (see docs/wire.md).")
	out.Const().DefsFunc(func(g *jen.Group) {
		for _, mm := range sm.methods {
			g.Id(mm.fullNameConst).Op("=").Lit(mm.fullName)
			g.Id(mm.routeConst).Uint32().Op("=").Op(fmt.Sprintf("0x%08x", mm.route))
		}
	})
	out.Line()
	out.Comment("The " + string(sm.svc.Desc.Name()) + " methods as the runtime knows them.")
	out.Var().DefsFunc(func(g *jen.Group) {
		for _, mm := range sm.methods {
			kind := "MethodUnary"
			if mm.oneWay {
				kind = "MethodOneWay"
			}
			g.Id(mm.methodVar).Op("=").Add(rt("NewMethod")).Call(jen.Id(mm.fullNameConst), jen.Id(mm.routeConst), rt(kind))
		}
	})
}

// generateClient writes the typed client of a client-to-server service.
func generateClient(out *jen.File, sm *serviceModel) {
	n := sm.names
	doc(out, fmt.Sprintf("%s calls the %s service through a [runtime.Client] (or any\n[runtime.Caller]).", n.Client, sm.svc.Desc.Name()),
		sm.svc.Comments.Leading, nil)
	out.Type().Id(n.Client).Struct(jen.Id("c").Add(rt("Caller")))
	out.Line()
	out.Commentf("%s returns a client of the %s service that calls through c.", n.NewClient, sm.svc.Desc.Name())
	out.Func().Id(n.NewClient).Params(jen.Id("c").Add(rt("Caller"))).Op("*").Id(n.Client).Block(
		jen.Return(jen.Op("&").Id(n.Client).Values(jen.Dict{jen.Id("c"): jen.Id("c")})),
	)
	for _, mm := range sm.methods {
		m := mm.m
		out.Line()
		if mm.oneWay {
			methodDoc(out, mm, fmt.Sprintf("%s sends a %s one-way message.", m.GoName, mm.fullName))
			out.Func().Params(jen.Id("x").Op("*").Id(n.Client)).Id(m.GoName).
				Params(ctxParam(), jen.Id("req").Op("*").Add(ident(m.Input.GoIdent))).Error().Block(
				jen.Return(rt("SendOneWay").Call(jen.Id("ctx"), jen.Id("x").Dot("c"), jen.Id(mm.methodVar), jen.Id("req"))),
			)
			continue
		}
		methodDoc(out, mm, fmt.Sprintf("%s calls %s.", m.GoName, mm.fullName))
		out.Func().Params(jen.Id("x").Op("*").Id(n.Client)).Id(m.GoName).
			Params(ctxParam(), jen.Id("req").Op("*").Add(ident(m.Input.GoIdent))).
			Params(jen.Op("*").Add(ident(m.Output.GoIdent)), jen.Error()).Block(
			jen.Return(rt("CallUnary").Index(ident(m.Output.GoIdent)).Call(jen.Id("ctx"), jen.Id("x").Dot("c"), jen.Id(mm.methodVar), jen.Id("req"))),
		)
	}
}

// generateHandler writes the handler interface, its Unimplemented type and
// the register function. Server-side handlers (client-to-server services)
// receive the calling session; client-side ones do not.
func generateHandler(out *jen.File, sm *serviceModel, serverSide bool) {
	n := sm.names
	side := "the server"
	if !serverSide {
		side = "a client"
	}
	params := func(m *protogen.Method, named bool) []jen.Code {
		name := func(n string) *jen.Statement {
			if named {
				return jen.Id(n)
			}
			return jen.Null()
		}
		ps := []jen.Code{name("ctx").Qual(contextPkg, "Context")}
		if serverSide {
			ps = append(ps, name("s").Op("*").Add(rt("Session")))
		}
		return append(ps, name("req").Op("*").Add(ident(m.Input.GoIdent)))
	}
	results := func(mm *methodModel) []jen.Code {
		if mm.oneWay {
			return []jen.Code{jen.Error()}
		}
		return []jen.Code{jen.Op("*").Add(ident(mm.m.Output.GoIdent)), jen.Error()}
	}

	out.Line()
	out.Commentf("%s is implemented by %s to serve the %s service. Embed", n.Handler, side, sm.svc.Desc.Name())
	out.Commentf("[%s] to stay compatible when methods are added.", n.Unimpl)
	out.Comment("")
	out.Comment("Concurrency: one-way methods of one connection run one at a time, in order;")
	out.Comment("request/response methods run concurrently. See [runtime.Handler].")
	out.Type().Id(n.Handler).InterfaceFunc(func(g *jen.Group) {
		for _, mm := range sm.methods {
			methodDoc(g, mm, fmt.Sprintf("%s handles %s.", mm.m.GoName, mm.fullName))
			g.Id(mm.m.GoName).Params(params(mm.m, true)...).Params(results(mm)...)
		}
	})

	out.Line()
	out.Commentf("%s answers every %s method with a CodeUnimplemented error.", n.Unimpl, sm.svc.Desc.Name())
	out.Type().Id(n.Unimpl).Struct()
	for _, mm := range sm.methods {
		out.Line()
		out.Commentf("%s returns a CodeUnimplemented error.", mm.m.GoName)
		var ret jen.Code = jen.Return(jen.Nil(), rt("Unimplemented").Call(jen.Id(mm.fullNameConst)))
		if mm.oneWay {
			ret = jen.Return(rt("Unimplemented").Call(jen.Id(mm.fullNameConst)))
		}
		out.Func().Params(jen.Id(n.Unimpl)).Id(mm.m.GoName).Params(params(mm.m, false)...).Params(results(mm)...).Block(ret)
	}

	out.Line()
	out.Commentf("%s registers h for every %s method on r (a [runtime.Server] or a", n.Register, sm.svc.Desc.Name())
	out.Comment("[runtime.Client]).")
	out.Func().Id(n.Register).Params(jen.Id("r").Add(rt("Registrar")), jen.Id("h").Id(n.Handler)).BlockFunc(func(g *jen.Group) {
		for _, mm := range sm.methods {
			g.Id("r").Dot("HandleMethod").Call(jen.Id(mm.methodVar), adapter(mm, serverSide))
		}
	})
}

// adapter returns the runtime handler wrapping h's method.
func adapter(mm *methodModel, serverSide bool) jen.Code {
	m := mm.m
	ctor := "NewUnaryHandler"
	if mm.oneWay {
		ctor = "NewOneWayHandler"
	}
	if serverSide {
		return rt(ctor).Call(jen.Id("h").Dot(m.GoName))
	}
	// Client-side handlers take no session: adapt the signature.
	res := []jen.Code{jen.Error()}
	if !mm.oneWay {
		res = []jen.Code{jen.Op("*").Add(ident(m.Output.GoIdent)), jen.Error()}
	}
	return rt(ctor).Call(jen.Func().
		Params(ctxParam(), jen.Id("_").Op("*").Add(rt("Session")), jen.Id("req").Op("*").Add(ident(m.Input.GoIdent))).
		Params(res...).Block(jen.Return(jen.Id("h").Dot(m.GoName).Call(jen.Id("ctx"), jen.Id("req")))))
}

// generatePusher writes the server-side pusher of a server-to-client service.
func generatePusher(out *jen.File, sm *serviceModel) {
	n := sm.names
	doc(out, fmt.Sprintf("%s sends the %s service's messages from a server to its\nclients: Send methods push to a [runtime.Target] (a session, a group, a\ngroup but one session, or every session), encoding each message once for\nall recipients; Call methods call one session's client and wait for its\nreply.", n.Pusher, sm.svc.Desc.Name()),
		sm.svc.Comments.Leading, nil)
	out.Type().Id(n.Pusher).Struct(jen.Id("srv").Op("*").Add(rt("Server")))
	out.Line()
	out.Commentf("%s returns a pusher sending through srv.", n.NewPusher)
	out.Func().Id(n.NewPusher).Params(jen.Id("srv").Op("*").Add(rt("Server"))).Op("*").Id(n.Pusher).Block(
		jen.Return(jen.Op("&").Id(n.Pusher).Values(jen.Dict{jen.Id("srv"): jen.Id("srv")})),
	)
	recv := func() *jen.Statement { return jen.Params(jen.Id("x").Op("*").Id(n.Pusher)) }
	for _, mm := range sm.methods {
		m := mm.m
		out.Line()
		sendNote := ""
		if !mm.oneWay {
			sendNote = "\nThe clients' handlers run, but their replies are not sent: use\nCall" + m.GoName + " to wait for one."
		}
		doc(out, fmt.Sprintf("Send%s sends %s to the target without waiting for an\nanswer, and returns how many sessions it was queued to.", m.GoName, mm.fullName)+sendNote, m.Comments.Leading, mm)
		out.Func().Add(recv()).Id("Send"+m.GoName).
			Params(ctxParam(), jen.Id("to").Add(rt("Target")), jen.Id("msg").Op("*").Add(ident(m.Input.GoIdent))).Params(jen.Int(), jen.Error()).Block(
			jen.Return(rt("Push").Call(jen.Id("ctx"), jen.Id("x").Dot("srv"), jen.Id("to"), jen.Id(mm.methodVar), jen.Id("msg"))),
		)
		if mm.oneWay {
			continue
		}
		out.Line()
		doc(out, fmt.Sprintf("Call%s calls %s on the client of the session with the\nid and waits for its reply.", m.GoName, mm.fullName), "", mm)
		out.Func().Add(recv()).Id("Call"+m.GoName).
			Params(ctxParam(), jen.Id("sessionID").Uint64(), jen.Id("req").Op("*").Add(ident(m.Input.GoIdent))).
			Params(jen.Op("*").Add(ident(m.Output.GoIdent)), jen.Error()).Block(
			jen.Return(rt("CallSession").Index(ident(m.Output.GoIdent)).Call(jen.Id("ctx"), jen.Id("x").Dot("srv"), jen.Id("sessionID"), jen.Id(mm.methodVar), jen.Id("req"))),
		)
	}
}
