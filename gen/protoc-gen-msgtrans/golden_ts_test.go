package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"
)

// The TypeScript output (lang=ts) has its own golden files: want_ts/ in
// each scenario beside want/. TestGoldenTS compares them (-update rewrites
// them); TestGoldenTSTypeCheck generates every scenario with protoc-gen-es
// too and type-checks the lot, with the runtime in clients/ts, by
// TypeScript 7 in strict mode.

const tsParam = "lang=ts,import_extension=js"

func TestGoldenTS(t *testing.T) {
	for _, sc := range scenarios(t) {
		t.Run(sc, func(t *testing.T) {
			resp := run(t, setRequest(loadImage(t, sc), tsParam))
			if resp.Error != nil {
				t.Fatalf("generator error: %s", resp.GetError())
			}
			got := map[string]string{}
			for _, f := range resp.File {
				if !strings.HasSuffix(f.GetName(), "_msgtrans.ts") {
					t.Errorf("lang=ts wrote %s", f.GetName())
				}
				got[f.GetName()] = f.GetContent()
			}
			wantDir := filepath.Join(goldenDir, sc, "want_ts")
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
		})
	}
}

// TestTSParams: the TypeScript parameters are checked, and shape the
// imports.
func TestTSParams(t *testing.T) {
	set := loadImage(t, "samepackage")
	for _, tt := range []struct {
		param, want, err string
	}{
		{"lang=ts", `from "./`, ""},
		{"lang=ts,import_extension=none", `_pb";`, ""},
		{"lang=ts,import_extension=ts", `_pb.ts";`, ""},
		{"lang=ts,ts_runtime=../runtime/index.js", `from "../runtime/index.js";`, ""},
		{"lang=rust", "", "lang=rust: the languages are go (the default) and ts"},
		{"lang=ts,import_extension=mjs", "", "import_extension=mjs: want none, js or ts"},
		{"lang=ts,ts_runtime=", "", "ts_runtime: empty module name"},
		{"color=blue", "", `unknown parameter "color"`},
	} {
		t.Run(tt.param, func(t *testing.T) {
			req := setRequest(set, tt.param)
			gen, err := pluginOptions(defaultParams()).New(req)
			if err != nil {
				if tt.err == "" || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if tt.err != "" {
				t.Fatalf("no error, want %q", tt.err)
			}
			if err := generate(gen); err != nil {
				t.Fatal(err)
			}
			resp := gen.Response()
			if len(resp.File) == 0 {
				t.Fatal("no files")
			}
			if c := resp.File[0].GetContent(); !strings.Contains(c, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, c)
			}
		})
	}
}

func TestGoldenTSTypeCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs protoc-gen-es and tsc")
	}
	ts := filepath.Join(repoRoot(t), "clients", "ts")
	esPlugin := filepath.Join(ts, "node_modules", ".bin", "protoc-gen-es")
	tsc := filepath.Join(ts, "node_modules", ".bin", "tsc")
	for _, p := range []string{esPlugin, tsc} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: run npm ci in clients/ts", p)
		}
	}
	tmp := t.TempDir()
	for _, sc := range scenarios(t) {
		set := loadImage(t, sc)
		dir := filepath.Join(tmp, sc)
		// protoc-gen-es writes every file of the set but the well-known
		// types (its runtime has them): the options the scenarios import
		// included.
		esReq := &pluginpb.CodeGeneratorRequest{ProtoFile: set.File, Parameter: proto.String("target=ts,import_extension=js")}
		for _, f := range set.File {
			if !strings.HasPrefix(f.GetName(), "google/protobuf/") {
				esReq.FileToGenerate = append(esReq.FileToGenerate, f.GetName())
			}
		}
		in, err := proto.Marshal(esReq)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(esPlugin)
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: protoc-gen-es: %v\n%s", sc, err, stderr.String())
		}
		esResp := &pluginpb.CodeGeneratorResponse{}
		if err := proto.Unmarshal(out, esResp); err != nil {
			t.Fatal(err)
		}
		if esResp.Error != nil {
			t.Fatalf("%s: protoc-gen-es: %s", sc, esResp.GetError())
		}
		ours := run(t, setRequest(set, tsParam))
		if ours.Error != nil {
			t.Fatalf("%s: %s", sc, ours.GetError())
		}
		files := map[string]string{}
		for _, f := range append(esResp.File, ours.File...) {
			files[f.GetName()] = f.GetContent()
		}
		writeTree(t, dir, files)
	}
	// The packages resolve through a link to clients/ts/node_modules, as
	// they would in a project of the user's; the runtime by its name.
	link(t, filepath.Join(ts, "node_modules"), filepath.Join(tmp, "node_modules"))
	writeFile(t, filepath.Join(tmp, "tsconfig.json"), `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "bundler",
    "lib": ["ES2022", "DOM"],
    "types": [],
    "strict": true,
    "noUncheckedIndexedAccess": true,
    "verbatimModuleSyntax": true,
    "noEmit": true,
    "paths": {"@msgtrans/client": ["`+filepath.ToSlash(filepath.Join(ts, "src", "index.ts"))+`"]}
  },
  "include": ["*/**/*.ts"]
}
`)
	cmd := exec.Command(tsc, "-p", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}
