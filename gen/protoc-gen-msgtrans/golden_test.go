package main

import (
	"bytes"
	"go/format"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// The golden suite: one folder per scenario under testdata/golden, each
// with
//
//	proto/        the scenario's .proto files
//	image.binpb   their descriptor set, compiled by buf (with -update)
//	want/         what the plugin writes for them, file by file
//
// TestGolden runs the generator on each committed descriptor set and
// compares its output with want/; -update rebuilds the descriptor sets
// with buf (when it is installed) and rewrites want/. TestGoldenBuild
// builds and vets every scenario's generated packages together with
// protoc-gen-go's output for them.

const goldenDir = "testdata/golden"

// goldenModule is the Go module the scenarios' go_package options are in;
// goldenShared is the other module one of them imports from.
const (
	goldenModule = "example.com/golden"
	goldenShared = "example.org/shared"
)

func scenarios(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no scenarios in %s", goldenDir)
	}
	return names
}

// ownFile reports whether an image file belongs to the scenario rather
// than to its imports (the well-known types, the msgtrans options).
func ownFile(name string) bool {
	return !strings.HasPrefix(name, "google/protobuf/") && !strings.HasPrefix(name, "msgtrans/")
}

// loadImage reads a scenario's descriptor set.
func loadImage(t *testing.T, scenario string) *descriptorpb.FileDescriptorSet {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, scenario, "image.binpb"))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update with buf installed)", err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, set); err != nil {
		t.Fatalf("%s: %v", scenario, err)
	}
	return set
}

// setRequest asks to generate every own file of set, with the parameter.
func setRequest(set *descriptorpb.FileDescriptorSet, param string) *pluginpb.CodeGeneratorRequest {
	req := &pluginpb.CodeGeneratorRequest{ProtoFile: set.File}
	if param != "" {
		req.Parameter = proto.String(param)
	}
	for _, f := range set.File {
		if ownFile(f.GetName()) {
			req.FileToGenerate = append(req.FileToGenerate, f.GetName())
		}
	}
	return req
}

func TestGolden(t *testing.T) {
	for _, sc := range scenarios(t) {
		t.Run(sc, func(t *testing.T) {
			if *update {
				buildImage(t, sc)
			}
			req := setRequest(loadImage(t, sc), "module="+goldenModule+"/"+sc)
			resp := run(t, req)
			if resp.Error != nil {
				t.Fatalf("generator error: %s", resp.GetError())
			}
			got := map[string]string{}
			for _, f := range resp.File {
				got[f.GetName()] = f.GetContent()
				src := []byte(f.GetContent())
				if formatted, err := format.Source(src); err != nil || !bytes.Equal(formatted, src) {
					t.Errorf("%s is not gofmt-clean (%v)", f.GetName(), err)
				}
			}
			wantDir := filepath.Join(goldenDir, sc, "want")
			if *update {
				writeTree(t, wantDir, got)
				return
			}
			want := readTree(t, wantDir)
			for name, content := range got {
				if w, ok := want[name]; !ok {
					t.Errorf("generated %s, which %s does not have", name, wantDir)
				} else if w != content {
					t.Errorf("%s differs from %s; run go test ./gen/protoc-gen-msgtrans -run TestGolden -update and review the diff", name, filepath.Join(wantDir, name))
				}
			}
			for name := range want {
				if _, ok := got[name]; !ok {
					t.Errorf("%s has %s, which the generator no longer writes", wantDir, name)
				}
			}
			again := run(t, setRequest(loadImage(t, sc), "module="+goldenModule+"/"+sc))
			if !proto.Equal(again, resp) {
				t.Error("two runs of the generator differ")
			}
		})
	}
}

// readTree returns the files under dir by slash-separated relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// writeTree replaces dir with the files.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildImage compiles a scenario's protos with buf, in a workspace of two
// modules linked into a temporary directory: the scenario's proto/ and
// this repository's schema/ (the way docs/codegen.md tells users to reach
// the options). Imports keep no source info, to keep the file small.
func buildImage(t *testing.T, scenario string) {
	t.Helper()
	buf := findBuf(t)
	if buf == "" {
		t.Logf("%s: buf is not installed: the committed image.binpb is kept", scenario)
		return
	}
	ws := t.TempDir()
	link(t, filepath.Join(goldenDir, scenario, "proto"), filepath.Join(ws, "proto"))
	link(t, filepath.Join(repoRoot(t), "schema"), filepath.Join(ws, "msgtrans"))
	writeFile(t, filepath.Join(ws, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n  - path: msgtrans\n")
	out := filepath.Join(ws, "image.binpb")
	command(t, ws, nil, buf, "build", "--as-file-descriptor-set", "-o", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, set); err != nil {
		t.Fatal(err)
	}
	for _, f := range set.File {
		if !ownFile(f.GetName()) {
			f.SourceCodeInfo = nil
		}
	}
	b, err = proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(goldenDir, scenario, "image.binpb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenBuild generates every scenario with protoc-gen-go (linked in,
// at the version go.mod requires) and this plugin into a temporary module
// (and the one other module a scenario imports from), then runs go build
// and go vet on all of it: every generated package compiles and is
// vet-clean.
func TestGoldenBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every scenario with the go command")
	}
	tmp := t.TempDir()
	mainDir, sharedDir := filepath.Join(tmp, "golden"), filepath.Join(tmp, "shared")
	files := map[string]string{}
	var packages []string
	for _, sc := range scenarios(t) {
		resp := generateBoth(t, setRequest(loadImage(t, sc), ""))
		for _, f := range resp.File {
			files[f.GetName()] = f.GetContent()
			if pkg := "./" + strings.TrimPrefix(filepath.Dir(f.GetName()), goldenModule+"/"); strings.HasSuffix(f.GetName(), "_msgtrans.pb.go") && !slices.Contains(packages, pkg) {
				packages = append(packages, pkg)
			}
		}
	}
	mainFiles, sharedFiles := map[string]string{}, map[string]string{}
	for name, content := range files {
		switch {
		case strings.HasPrefix(name, goldenModule+"/"):
			mainFiles[strings.TrimPrefix(name, goldenModule+"/")] = content
		case strings.HasPrefix(name, goldenShared+"/"):
			sharedFiles[strings.TrimPrefix(name, goldenShared+"/")] = content
		default:
			t.Fatalf("generated %s, outside the scenarios' modules", name)
		}
	}
	writeTree(t, mainDir, mainFiles)
	writeTree(t, sharedDir, sharedFiles)
	writeFile(t, filepath.Join(sharedDir, "go.mod"), "module "+goldenShared+"\n\ngo 1.26.0\n\nrequire google.golang.org/protobuf "+protobufVersion(t)+"\n")
	copyFile(t, filepath.Join(repoRoot(t), "go.sum"), filepath.Join(sharedDir, "go.sum"))
	tempModule(t, mainDir, goldenModule, map[string]string{goldenShared: sharedDir})

	sort.Strings(packages)
	t.Logf("building %d packages with generated services: %s", len(packages), strings.Join(packages, " "))
	command(t, mainDir, goEnv(), "go", "build", "./...")
	command(t, mainDir, goEnv(), "go", "vet", "./...")
}

// generateBoth runs protoc-gen-go and this plugin on req, as buf would
// with both in buf.gen.yaml, and returns all the files they write.
func generateBoth(t *testing.T, req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	t.Helper()
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatalf("protogen: %v", err)
	}
	for _, f := range gen.Files {
		if f.Generate {
			gengo.GenerateFile(gen, f)
		}
	}
	resp := gen.Response()
	if resp.Error != nil {
		t.Fatalf("protoc-gen-go: %s", resp.GetError())
	}
	ours := run(t, req)
	if ours.Error != nil {
		t.Fatalf("protoc-gen-msgtrans: %s", ours.GetError())
	}
	resp.File = append(resp.File, ours.File...)
	return resp
}

// TestSupportedEditions: the plugin declares what protoc-gen-go declares,
// so that any file protoc-gen-go accepts reaches it.
func TestSupportedEditions(t *testing.T) {
	resp := run(t, setRequest(loadImage(t, "editions2024"), ""))
	if got, want := resp.GetSupportedFeatures(), gengo.SupportedFeatures; got != want {
		t.Errorf("features %#x, protoc-gen-go's %#x", got, want)
	}
	if got, want := resp.GetMinimumEdition(), int32(gengo.SupportedEditionsMinimum); got != want {
		t.Errorf("minimum edition %v, protoc-gen-go's %v", got, want)
	}
	if got, want := resp.GetMaximumEdition(), int32(gengo.SupportedEditionsMaximum); got != want {
		t.Errorf("maximum edition %v, protoc-gen-go's %v", got, want)
	}
}
