package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	msgtransv1 "github.com/msgtrans/msgtrans-go/schema/msgtrans/v1"
)

// Fuzzing the model builder and the renderer: whatever descriptors
// protogen accepts, the generator either refuses them in one line or
// writes Go that parses; it never panics.

// generateChecked runs the generator on req and fails t on a panic (which
// the fuzzer reports by itself), a multi-line error or output protogen
// could not parse.
func generateChecked(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
	gen, err := pluginOptions(defaultParams()).New(req)
	if err != nil {
		return // protogen refuses it: the plugin never sees it
	}
	declareSupport(gen)
	if err := generate(gen); err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error on several lines: %q", err)
		}
		return
	}
	if resp := gen.Response(); resp.Error != nil {
		t.Errorf("the generated Go does not parse: %s", resp.GetError())
	}
}

// FuzzGenerate feeds the generator descriptor sets: the golden scenarios'
// and their mutations.
func FuzzGenerate(f *testing.F) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(goldenDir, e.Name(), "image.binpb")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		set := &descriptorpb.FileDescriptorSet{}
		if proto.Unmarshal(b, set) != nil {
			return
		}
		generateChecked(t, setRequest(set, ""))
	})
}

// FuzzService builds one file with a service from the fuzzer's names,
// comments and options: names protodesc accepts, comments of any bytes.
// The file sets the msgtrans options without importing options.proto
// (the plugin reads them all the same), which keeps descriptor.proto out
// of every run.
func FuzzService(f *testing.F) {
	f.Add("Chat", "Join", "JoinRequest", "Join joins.\n", " */ /* //go:generate\n", uint32(0), false, false, false)
	f.Add("Client", "Handle", "ClientHandler", "", "", uint32(7), true, true, true)
	f.Add("A", "BC", "ABCRoute", "\x00\xff\r\n", "Deprecated: x", uint32(0xffffffff), false, true, false)
	f.Fuzz(func(t *testing.T, svc, method, msg, svcComment, methodComment string, route uint32, oneWay, toClient, deprecated bool) {
		file := &descriptorpb.FileDescriptorProto{
			Name:    proto.String("fuzz/v1/fuzz.proto"),
			Package: proto.String("fuzz.v1"),
			Syntax:  proto.String("proto3"),
			Options: &descriptorpb.FileOptions{GoPackage: proto.String("example.com/fuzz/v1;fuzzv1")},
			MessageType: []*descriptorpb.DescriptorProto{
				{Name: proto.String(msg)},
				{Name: proto.String("Other")},
			},
			Service: []*descriptorpb.ServiceDescriptorProto{{
				Name:    proto.String(svc),
				Options: &descriptorpb.ServiceOptions{Deprecated: proto.Bool(deprecated)},
				Method: []*descriptorpb.MethodDescriptorProto{
					{Name: proto.String(method), InputType: proto.String(".fuzz.v1." + msg), OutputType: proto.String(".fuzz.v1.Other"),
						Options: &descriptorpb.MethodOptions{Deprecated: proto.Bool(deprecated)}},
					{Name: proto.String("Second"), InputType: proto.String(".fuzz.v1.Other"), OutputType: proto.String(".fuzz.v1." + msg)},
				},
			}},
			SourceCodeInfo: &descriptorpb.SourceCodeInfo{Location: []*descriptorpb.SourceCodeInfo_Location{
				{Path: []int32{6, 0}, Span: []int32{0, 0, 1}, LeadingComments: proto.String(svcComment)},
				{Path: []int32{6, 0, 2, 0}, Span: []int32{1, 0, 1}, LeadingComments: proto.String(methodComment)},
			}},
		}
		direction := msgtransv1.Direction_DIRECTION_CLIENT_TO_SERVER
		if toClient {
			direction = msgtransv1.Direction_DIRECTION_SERVER_TO_CLIENT
		}
		proto.SetExtension(file.Service[0].Options, msgtransv1.E_Service, &msgtransv1.ServiceOptions{Direction: direction})
		proto.SetExtension(file.Service[0].Method[0].Options, msgtransv1.E_Method, &msgtransv1.MethodOptions{RouteId: route, OneWay: oneWay})
		generateChecked(t, &pluginpb.CodeGeneratorRequest{
			FileToGenerate: []string{file.GetName()},
			ProtoFile:      []*descriptorpb.FileDescriptorProto{file},
		})
	})
}
