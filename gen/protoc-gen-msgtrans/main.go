// Command protoc-gen-msgtrans is a protoc and buf plugin that generates
// typed msgtrans-go clients, handlers and pushers for the services in
// .proto files. For each file with services it writes <file>_msgtrans.pb.go
// beside protoc-gen-go's <file>.pb.go.
//
// Install it with
//
//	go install github.com/msgtrans/msgtrans-go/gen/protoc-gen-msgtrans@latest
//
// and run it through buf (see the repository's buf.gen.yaml) or protoc:
//
//	protoc --go_out=. --go_opt=paths=source_relative \
//	       --msgtrans_out=. --msgtrans_opt=paths=source_relative chat.proto
//
// docs/codegen.md lists what each proto construct generates, how names and
// imports are chosen, how to import msgtrans/v1/options.proto without
// copying it, and what the plugin refuses. The plugin parses the
// descriptors into a model (model.go, names.go) and renders it with
// jennifer (generator.go, comments.go).
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// version is the plugin's version, printed by --version and written into
// the header of generated files.
const version = "v0.1.0"

// What the plugin supports, declared to protoc and buf the way
// protoc-gen-go declares it: proto3 optional fields, and editions from
// proto2 to 2024 (files of any edition generate like proto3 files; the
// generator reads only names, comments and options).
const (
	supportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL |
		pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	minimumEdition = descriptorpb.Edition_EDITION_PROTO2
	maximumEdition = descriptorpb.Edition_EDITION_2024
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("protoc-gen-msgtrans", version)
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "protoc-gen-msgtrans: a protoc plugin; run it through protoc or buf, or with --version")
		os.Exit(2)
	}
	pluginOptions(defaultParams()).Run(func(gen *protogen.Plugin) error {
		declareSupport(gen)
		return generate(gen)
	})
}

// declareSupport tells protoc or buf what the plugin supports.
func declareSupport(gen *protogen.Plugin) {
	gen.SupportedFeatures = supportedFeatures
	gen.SupportedEditionsMinimum = minimumEdition
	gen.SupportedEditionsMaximum = maximumEdition
}
