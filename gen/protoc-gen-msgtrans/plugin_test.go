package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The golden scenarios again, through the plugin binary as buf and protoc
// run it: what it declares (editions support) is checked by them, and
// what it writes must be the golden files.

// buildPlugin builds protoc-gen-msgtrans into a temporary directory and
// returns its path.
func buildPlugin(t *testing.T) string {
	t.Helper()
	plugin := filepath.Join(t.TempDir(), "protoc-gen-msgtrans")
	command(t, ".", nil, "go", "build", "-o", plugin, ".")
	return plugin
}

// protoFiles returns the .proto files under a scenario's proto/, relative
// to it.
func protoFiles(t *testing.T, scenario string) []string {
	t.Helper()
	var files []string
	for name := range readTree(t, filepath.Join(goldenDir, scenario, "proto")) {
		if strings.HasSuffix(name, ".proto") {
			files = append(files, name)
		}
	}
	return files
}

// checkOutput compares the files under out with the scenario's want/.
func checkOutput(t *testing.T, scenario, out string) {
	t.Helper()
	got := readTree(t, out)
	want := readTree(t, filepath.Join(goldenDir, scenario, "want"))
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: output differs from (or lacks) the golden file", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: written, but not a golden file", name)
		}
	}
}

func TestPluginUnderBuf(t *testing.T) {
	buf := needBuf(t)
	plugin := buildPlugin(t)
	for _, sc := range scenarios(t) {
		t.Run(sc, func(t *testing.T) {
			ws := t.TempDir()
			link(t, filepath.Join(goldenDir, sc, "proto"), filepath.Join(ws, "proto"))
			link(t, filepath.Join(repoRoot(t), "schema"), filepath.Join(ws, "msgtrans"))
			writeFile(t, filepath.Join(ws, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n  - path: msgtrans\n")
			writeFile(t, filepath.Join(ws, "buf.gen.yaml"), "version: v2\nplugins:\n"+
				"  - local: "+plugin+"\n    out: out\n    opt: module="+goldenModule+"/"+sc+"\n"+
				"inputs:\n  - directory: proto\n")
			command(t, ws, nil, buf, "generate")
			checkOutput(t, sc, filepath.Join(ws, "out"))
		})
	}
}

// protocVersion returns the installed protoc's major and minor version
// in the numbering protobuf uses since 3.20 became 20 (3.21.12 is 21.12).
func protocVersion(t *testing.T, protoc string) (string, int) {
	t.Helper()
	out, err := exec.Command(protoc, "--version").Output()
	if err != nil {
		t.Fatalf("protoc --version: %v", err)
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "libprotoc"))
	m := regexp.MustCompile(`^(?:3\.)?(\d+)`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("protoc --version printed %q", out)
	}
	major, _ := strconv.Atoi(m[1])
	return v, major
}

// editionNeeds is the protoc release that first compiles each edition
// without an experimental flag.
var editionNeeds = map[string]int{"editions2023": 27, "editions2024": 32}

func TestPluginUnderProtoc(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc is not installed (CI installs protobuf-compiler)")
	}
	version, major := protocVersion(t, protoc)
	plugin := buildPlugin(t)
	for _, sc := range scenarios(t) {
		t.Run(sc, func(t *testing.T) {
			if needs, ok := editionNeeds[sc]; ok && major < needs {
				t.Skipf("protoc %s cannot compile %s: editions need protoc %d or later", version, sc, needs)
			}
			out := t.TempDir()
			args := []string{
				"-I", filepath.Join(goldenDir, sc, "proto"), "-I", filepath.Join(repoRoot(t), "schema"),
				"--plugin=protoc-gen-msgtrans=" + plugin,
				"--msgtrans_out=" + out, "--msgtrans_opt=module=" + goldenModule + "/" + sc,
			}
			command(t, ".", nil, protoc, append(args, protoFiles(t, sc)...)...)
			checkOutput(t, sc, out)
		})
	}
}

// TestProtocRefusesUnsupportedEditions: where protoc is too old for an
// edition, it says so and the plugin is not the one that fails.
func TestProtocRefusesUnsupportedEditions(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc is not installed")
	}
	version, major := protocVersion(t, protoc)
	if major >= editionNeeds["editions2023"] {
		t.Skipf("protoc %s supports editions", version)
	}
	out, err := tryCommand(".", nil, protoc, "-I", filepath.Join(goldenDir, "editions2023", "proto"), "-I", filepath.Join(repoRoot(t), "schema"),
		"--descriptor_set_out="+filepath.Join(t.TempDir(), "x.binpb"), "editions2023/v1/editions.proto")
	if err == nil || !strings.Contains(out, "edition") {
		t.Errorf("protoc %s on an editions file: %v, %q; want a refusal naming the edition", version, err, out)
	}
}
