package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	msgtransv1 "github.com/msgtrans/msgtrans-go/schema/msgtrans/v1"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the golden files with the generator's output")

const moduleParam = "module=github.com/msgtrans/msgtrans-go"

// run runs the generator on req as protoc would.
func run(t *testing.T, req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	t.Helper()
	gen, err := pluginOptions(defaultParams()).New(req)
	if err != nil {
		t.Fatalf("protogen: %v", err)
	}
	declareSupport(gen)
	if err := generate(gen); err != nil {
		gen.Error(err)
	}
	return gen.Response()
}

// imageRequest builds a request from a descriptor set compiled by
// `buf build` (see .ci/run), which keeps the proto comments.
func imageRequest(t *testing.T, image string, files ...string) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatalf("%s: %v", image, err)
	}
	return &pluginpb.CodeGeneratorRequest{FileToGenerate: files, Parameter: proto.String(moduleParam), ProtoFile: set.File}
}

// TestGentestGolden compares the generator's output with the generated files
// committed in the repository, which are the golden files: -update rewrites
// them.
func TestGentestGolden(t *testing.T) {
	tests := []struct {
		image string
		file  string // the .proto to generate
		want  string // the committed output, relative to the repository root
	}{
		{"testdata/gentest.binpb", "gentest/v1/gentest.proto", "internal/gentest/gentestv1/gentest_msgtrans.pb.go"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			resp := run(t, imageRequest(t, tt.image, tt.file))
			if resp.Error != nil {
				t.Fatalf("generator error: %s", resp.GetError())
			}
			if len(resp.File) != 1 || resp.File[0].GetName() != tt.want {
				t.Fatalf("generated %d files (first %q), want exactly %s", len(resp.File), firstName(resp), tt.want)
			}
			got := []byte(resp.File[0].GetContent())
			path := filepath.Join("..", "..", tt.want)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator's output; run go test ./gen/protoc-gen-msgtrans -update (or buf generate) and review the diff", tt.want)
			}
			// Deterministic: a second run gives the same bytes.
			if again := run(t, imageRequest(t, tt.image, tt.file)); again.File[0].GetContent() != string(got) {
				t.Error("two runs of the generator differ")
			}
		})
	}
}

func firstName(r *pluginpb.CodeGeneratorResponse) string {
	if len(r.File) == 0 {
		return ""
	}
	return r.File[0].GetName()
}

// handmade returns a request for one hand-built file with the given
// methods in a service S (and services given by extra), in package bad.v1.
func handmade(svcOpts *descriptorpb.ServiceOptions, methods ...*descriptorpb.MethodDescriptorProto) *pluginpb.CodeGeneratorRequest {
	file := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("bad/v1/bad.proto"),
		Package:     proto.String("bad.v1"),
		Syntax:      proto.String("proto3"),
		Options:     &descriptorpb.FileOptions{GoPackage: proto.String("example.com/bad/v1;badv1")},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
		Service:     []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S"), Method: methods, Options: svcOpts}},
	}
	return &pluginpb.CodeGeneratorRequest{FileToGenerate: []string{"bad/v1/bad.proto"}, ProtoFile: []*descriptorpb.FileDescriptorProto{file}}
}

func method(name string, opts *msgtransv1.MethodOptions, mutate ...func(*descriptorpb.MethodDescriptorProto)) *descriptorpb.MethodDescriptorProto {
	m := &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: proto.String(".bad.v1.M"), OutputType: proto.String(".bad.v1.M")}
	if opts != nil {
		m.Options = &descriptorpb.MethodOptions{}
		proto.SetExtension(m.Options, msgtransv1.E_Method, opts)
	}
	for _, f := range mutate {
		f(m)
	}
	return m
}

func TestPluginErrors(t *testing.T) {
	if r := routeOf("bad.v1.S.R19MEqo"); r != 0 {
		t.Fatalf("the route-0 case's name hashes to %#x, not 0", r)
	}
	badDirection := &descriptorpb.ServiceOptions{}
	proto.SetExtension(badDirection, msgtransv1.E_Service, &msgtransv1.ServiceOptions{Direction: 99})
	tests := []struct {
		name string
		req  *pluginpb.CodeGeneratorRequest
		want string
	}{
		{
			"one-way stream",
			handmade(nil, method("Up", &msgtransv1.MethodOptions{OneWay: true}, func(m *descriptorpb.MethodDescriptorProto) { m.ClientStreaming = proto.Bool(true) })),
			"bad/v1/bad.proto: service S, method Up: a client-streaming rpc cannot be one-way",
		},
		{
			"one-way server stream",
			handmade(nil, method("Down", &msgtransv1.MethodOptions{OneWay: true}, func(m *descriptorpb.MethodDescriptorProto) { m.ServerStreaming = proto.Bool(true) })),
			"bad/v1/bad.proto: service S, method Down: a server-streaming rpc cannot be one-way",
		},
		{
			"two methods, one Go name",
			handmade(nil, method("get_it", nil), method("GetIt", nil)),
			"bad/v1/bad.proto: service S, method GetIt: its Go name GetIt is also the Go name of method get_it",
		},
		{
			"route collision",
			handmade(nil, method("A", &msgtransv1.MethodOptions{RouteId: 7}), method("B", &msgtransv1.MethodOptions{RouteId: 7})),
			"bad/v1/bad.proto: service S, method B: route id 0x00000007 of bad.v1.S.B collides with bad.v1.S.A",
		},
		{
			"override colliding with a derived id",
			handmade(nil, method("A", nil), method("B", &msgtransv1.MethodOptions{RouteId: routeOf("bad.v1.S.A")})),
			"of bad.v1.S.B collides with bad.v1.S.A",
		},
		{
			"unknown direction",
			handmade(badDirection, method("A", nil)),
			"bad/v1/bad.proto: service S: unknown direction 99",
		},
		{
			// A name whose FNV-1a hash is 0, found by meeting in the middle.
			"route id 0 derived",
			handmade(nil, method("R19MEqo", nil)),
			"bad/v1/bad.proto: service S, method R19MEqo: route id 0 is reserved for control packets; set (msgtrans.v1.method).route_id",
		},
	}
	badPackage := handmade(nil, method("A", nil))
	badPackage.ProtoFile[0].Options.GoPackage = proto.String("example.com/bad/v1;bad-v1")
	keywordPackage := handmade(nil, method("A", nil))
	keywordPackage.ProtoFile[0].Options.GoPackage = proto.String("example.com/bad/v1;func")
	tests = append(tests, []struct {
		name string
		req  *pluginpb.CodeGeneratorRequest
		want string
	}{
		// Found by FuzzGenerate: protogen keeps the name after the ';'
		// as it is, and the file did not parse.
		{"go package name not an identifier", badPackage, `bad/v1/bad.proto: go_package names the Go package "bad-v1", which is not a Go identifier`},
		{"go package name a keyword", keywordPackage, `bad/v1/bad.proto: go_package names the Go package "func", which is not a Go identifier`},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := run(t, tt.req)
			if !strings.Contains(resp.GetError(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", resp.GetError(), tt.want)
			}
			if strings.Contains(resp.GetError(), "\n") {
				t.Errorf("error = %q, want one line", resp.GetError())
			}
			if len(resp.File) != 0 {
				t.Errorf("%d files generated despite the error", len(resp.File))
			}
		})
	}
}

// TestNoServicesNoFile: files without services produce no output.
func TestNoServicesNoFile(t *testing.T) {
	req := handmade(nil)
	req.ProtoFile[0].Service = nil
	if resp := run(t, req); resp.Error != nil || len(resp.File) != 0 {
		t.Errorf("got %d files, error %q; want none", len(resp.File), resp.GetError())
	}
}

// TestProtoc runs the plugin under plain protoc (Debian's protobuf-compiler
// in CI) and checks that it writes the same file as buf does.
func TestProtoc(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc is not installed (CI installs protobuf-compiler)")
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "protoc-gen-msgtrans")
	if out, err := exec.Command("go", "build", "-o", plugin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(plugin, "--version").Output(); err != nil || strings.TrimSpace(string(out)) != "protoc-gen-msgtrans "+version {
		t.Errorf("--version printed %q, %v", out, err)
	}
	root := filepath.Join("..", "..")
	cmd := exec.Command(protoc,
		"-I", filepath.Join(root, "schema"), "-I", filepath.Join(root, "internal/gentest/proto"),
		"--plugin=protoc-gen-msgtrans="+plugin, "--msgtrans_out="+dir, "--msgtrans_opt="+moduleParam,
		filepath.Join(root, "internal/gentest/proto/gentest/v1/gentest.proto"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	const file = "internal/gentest/gentestv1/gentest_msgtrans.pb.go"
	got, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("protoc's output differs from the committed %s", file)
	}
}

func routeOf(fullMethod string) uint32 { return wire.RouteID(fullMethod) }
