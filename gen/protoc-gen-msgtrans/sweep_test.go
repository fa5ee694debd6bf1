package main

import (
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The real-world sweep: buf runs protoc-gen-go and this plugin over every
// .proto file that declares a service in the module of
// google.golang.org/grpc, read where the Go module cache keeps it, and
// what they write is built and vetted, streaming rpcs included.

// sweepModule is the module swept; its version is the one internal/bench
// requires, so the module cache usually has it already.
const sweepModule = "google.golang.org/grpc"

func TestRealWorldSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs buf and the go command over a module's protos")
	}
	buf := needBuf(t)
	dir := moduleDir(t, sweepModule, benchRequirement(t, sweepModule))
	files := serviceFiles(t, dir)
	if len(files) == 0 {
		t.Fatalf("no .proto file in %s declares a service", dir)
	}

	bin := t.TempDir()
	protocGenGo, plugin := filepath.Join(bin, "protoc-gen-go"), filepath.Join(bin, "protoc-gen-msgtrans")
	command(t, ".", nil, "go", "build", "-o", protocGenGo, "google.golang.org/protobuf/cmd/protoc-gen-go")
	command(t, ".", nil, "go", "build", "-o", plugin, ".")
	template := filepath.Join(bin, "buf.gen.yaml")
	writeFile(t, template, "version: v2\nplugins:\n"+
		"  - local: "+protocGenGo+"\n    out: .\n    opt: module="+sweepModule+"\n    include_imports: true\n"+
		"  - local: "+plugin+"\n    out: .\n    opt: module="+sweepModule+"\n")

	var built, streaming int
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			streams := streamingMethods(t, buf, dir, file)
			out := t.TempDir()
			// buf reads the module directory in place (the module cache is
			// read-only; nothing is written there) and writes to out.
			msg, err := tryCommand(dir, nil, buf, "generate", "--template", template, "--path", file, "-o", out)
			if err != nil {
				t.Fatalf("buf generate on %s: %v\n%s", file, err, msg)
			}
			written := slices.Collect(maps.Keys(readTree(t, out)))
			if !slices.ContainsFunc(written, func(name string) bool { return strings.HasSuffix(name, "_msgtrans.pb.go") }) {
				t.Fatalf("buf generate on %s wrote no _msgtrans.pb.go file: %v", file, written)
			}
			tempModule(t, out, sweepModule, nil)
			// By directory: ./... would skip the packages under testdata/.
			pkgs := goPackages(t, out)
			command(t, out, goEnv(), "go", append([]string{"build"}, pkgs...)...)
			command(t, out, goEnv(), "go", append([]string{"vet"}, pkgs...)...)
			built++
			if len(streams) > 0 {
				streaming++
			}
		})
	}
	t.Logf("real-world sweep: %d files, %d generated and built, %d of them with streaming rpcs", len(files), built, streaming)
	if built != len(files) && !t.Failed() {
		t.Errorf("%d files not built", len(files)-built)
	}
}

// benchRequirement returns the version of module internal/bench's go.mod
// requires.
func benchRequirement(t *testing.T, module string) string {
	t.Helper()
	var mod struct {
		Require []struct{ Path, Version string }
	}
	out := command(t, filepath.Join(repoRoot(t), "internal", "bench"), nil, "go", "mod", "edit", "-json")
	if err := json.Unmarshal([]byte(out), &mod); err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Require {
		if r.Path == module {
			return r.Version
		}
	}
	t.Fatalf("internal/bench does not require %s", module)
	return ""
}

// moduleDir downloads module@version into the module cache, if it is not
// there yet, and returns its directory there.
func moduleDir(t *testing.T, module, version string) string {
	t.Helper()
	out := command(t, t.TempDir(), []string{"GOWORK=off"}, "go", "mod", "download", "-json", module+"@"+version)
	var info struct{ Dir, Error string }
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s@%s: %v %s\n%s", module, version, err, info.Error, out)
	}
	return info.Dir
}

var serviceDecl = regexp.MustCompile(`(?m)^\s*service\s+\w+\s*\{`)

// serviceFiles returns the .proto files under dir that declare a service,
// relative to dir and sorted.
func serviceFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".proto") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if serviceDecl.Match(b) {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// streamingMethods compiles file with buf and returns, for each streaming
// rpc in it, the start of the refusal naming it: "<file>: service S,
// method M:".
func streamingMethods(t *testing.T, buf, dir, file string) []string {
	t.Helper()
	image := filepath.Join(t.TempDir(), "image.binpb")
	command(t, dir, nil, buf, "build", "--as-file-descriptor-set", "--path", file, "-o", image)
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, set); err != nil {
		t.Fatal(err)
	}
	var streams []string
	for _, f := range set.File {
		if f.GetName() != file {
			continue
		}
		for _, s := range f.Service {
			for _, m := range s.Method {
				if m.GetClientStreaming() || m.GetServerStreaming() {
					streams = append(streams, file+": service "+s.GetName()+", method "+m.GetName()+":")
				}
			}
		}
	}
	return streams
}
