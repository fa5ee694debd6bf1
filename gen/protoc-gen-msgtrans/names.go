package main

import (
	"go/token"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
)

// Names: every identifier the generator writes is computed here, once,
// before rendering. docs/codegen.md has the table of what each proto
// construct generates.

// names holds the package-level identifiers generated for one service.
type names struct {
	Base         string // ChatService
	ServiceConst string // ChatServiceName
	Client       string // ChatServiceClient
	NewClient    string // NewChatServiceClient
	Handler      string // ChatServiceHandler
	Unimpl       string // UnimplementedChatServiceHandler
	Register     string // RegisterChatServiceHandler
	Pusher       string // ChatServicePusher (server-to-client services)
	NewPusher    string // NewChatServicePusher
}

func newNames(svc *protogen.Service) names {
	b := svc.GoName
	return names{
		Base:         b,
		ServiceConst: b + "Name",
		Client:       b + "Client",
		NewClient:    "New" + b + "Client",
		Handler:      b + "Handler",
		Unimpl:       "Unimplemented" + b + "Handler",
		Register:     "Register" + b + "Handler",
		Pusher:       b + "Pusher",
		NewPusher:    "New" + b + "Pusher",
	}
}

// scope is the set of package-level identifiers of one Go package: those
// protoc-gen-go declares for the package's files in the request, and those
// this generator has already taken.
type scope map[string]bool

// take returns name, or name followed by as many underscores as it takes
// to be unique in the scope (protoc-gen-go's way with colliding names),
// and takes it.
func (s scope) take(name string) string {
	for s[name] {
		name += "_"
	}
	s[name] = true
	return name
}

// newScope collects the package-level identifiers protoc-gen-go declares
// for the files of gen with the Go import path: messages (and their
// builders), enums (with their _name and _value maps), enum values, oneof
// wrappers, extensions and file descriptors. Files of the package that are
// not in the request are not seen.
func newScope(gen *protogen.Plugin, importPath protogen.GoImportPath) scope {
	s := scope{}
	enums := func(es []*protogen.Enum) {
		for _, e := range es {
			s[e.GoIdent.GoName] = true
			s[e.GoIdent.GoName+"_name"] = true
			s[e.GoIdent.GoName+"_value"] = true
			for _, v := range e.Values {
				s[v.GoIdent.GoName] = true
				if v.PrefixedAlias.GoName != "" {
					s[v.PrefixedAlias.GoName] = true
				}
			}
		}
	}
	var messages func([]*protogen.Message)
	messages = func(ms []*protogen.Message) {
		for _, m := range ms {
			s[m.GoIdent.GoName] = true
			s[m.GoIdent.GoName+"_builder"] = true
			for _, o := range m.Oneofs {
				for _, f := range o.Fields {
					s[f.GoIdent.GoName] = true
				}
			}
			for _, x := range m.Extensions {
				s["E_"+x.GoIdent.GoName] = true
			}
			enums(m.Enums)
			messages(m.Messages)
		}
	}
	for _, f := range gen.Files {
		if f.GoImportPath != importPath {
			continue
		}
		s[f.GoDescriptorIdent.GoName] = true
		enums(f.Enums)
		messages(f.Messages)
		for _, x := range f.Extensions {
			s["E_"+x.GoIdent.GoName] = true
		}
	}
	return s
}

// assignNames gives every service and method of fm its identifiers, unique
// in the package's scope s. Only the identifiers a service generates are
// taken: a server-to-client service has no client, a client-to-server one
// no pusher.
func assignNames(fm *fileModel, s scope) {
	for _, sm := range fm.services {
		n := newNames(sm.svc)
		n.ServiceConst = s.take(n.ServiceConst)
		if sm.toClient {
			n.Pusher, n.NewPusher = s.take(n.Pusher), s.take(n.NewPusher)
		} else {
			n.Client, n.NewClient = s.take(n.Client), s.take(n.NewClient)
		}
		n.Handler, n.Unimpl, n.Register = s.take(n.Handler), s.take(n.Unimpl), s.take(n.Register)
		sm.names = n
		for _, mm := range sm.methods {
			base := sm.svc.GoName + mm.m.GoName
			mm.fullNameConst = s.take(base + "FullMethod")
			mm.routeConst = s.take(base + "Route")
			mm.methodVar = s.take(lowerFirst(base) + "Method")
		}
	}
}

// goImport is a Go package the generated file imports, and its name there.
type goImport struct {
	path protogen.GoImportPath
	name string
}

// alias reports whether the import needs an explicit name: when the name
// is not the last element of the path.
func (i goImport) alias() bool { return i.name != path.Base(string(i.path)) }

// reservedImportNames cannot name an imported package: the packages every
// generated file imports and the parameter and receiver names of generated
// functions. Neither can what jennifer reserves (keywords, predeclared
// identifiers, err).
var reservedImportNames = map[string]bool{
	"context": true, "runtime": true,
	"c": true, "ctx": true, "h": true, "msg": true, "r": true, "req": true, "s": true,
	"sessionID": true, "srv": true, "stream": true, "to": true, "x": true,
}

// assignImports names the packages of the messages fm's methods use: each
// by the Go package name protoc-gen-go gave its file (GoPackageName, not a
// guess from the path), followed by 1, 2, ... when another import, a
// reserved name or a package-level identifier already has it, as protogen
// does. Paths are taken in sorted order, so the names are deterministic.
func assignImports(gen *protogen.Plugin, fm *fileModel, s scope) {
	pkgNames := map[protogen.GoImportPath]protogen.GoPackageName{}
	for _, sm := range fm.services {
		for _, mm := range sm.methods {
			for _, msg := range mm.messages() {
				p := msg.GoIdent.GoImportPath
				if p == fm.file.GoImportPath {
					continue
				}
				if _, seen := pkgNames[p]; seen {
					continue
				}
				// Every file a message comes from is in the request, so
				// protogen knows its package name; the path's last
				// element only stands in should it not.
				name := protogen.GoPackageName(path.Base(string(p)))
				if file, ok := gen.FilesByPath[msg.Desc.ParentFile().Path()]; ok {
					name = file.GoPackageName
				}
				pkgNames[p] = name
			}
		}
	}
	paths := make([]protogen.GoImportPath, 0, len(pkgNames))
	for p := range pkgNames {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return paths[i] < paths[j] })
	used := map[string]bool{}
	for _, p := range paths {
		orig := goIdentName(string(pkgNames[p]))
		name := orig
		for i := 1; used[name] || reservedImportNames[name] || jen.IsReservedWord(name) || s[name]; i++ {
			name = orig + strconv.Itoa(i)
		}
		used[name] = true
		fm.imports = append(fm.imports, goImport{path: p, name: name})
	}
}

// goIdentName returns name if it is a Go identifier, else "pkg" (protogen
// sanitizes package names, so this guards only against the unexpected).
func goIdentName(name string) string {
	if token.IsIdentifier(name) {
		return name
	}
	return "pkg"
}

// lowerFirst returns s with its leading capitals in lower case, keeping
// the capital that starts the next word: Chat → chat, URLService →
// urlService, HTTP → http.
func lowerFirst(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) && unicode.IsLower(r[n]) {
		n-- // the last capital starts the next word
	}
	return strings.ToLower(string(r[:n])) + string(r[n:])
}
