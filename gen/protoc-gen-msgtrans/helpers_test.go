package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the tests that run the go command, buf and protoc.

// commandTimeout bounds every command a test runs.
const commandTimeout = 5 * time.Minute

// repoRoot returns the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var gopath = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

// findBuf returns the buf command: on the PATH, else where go install puts
// it (as .ci/run does); "" when there is none.
func findBuf(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("buf"); err == nil {
		return p
	}
	if gp := gopath(); gp != "" {
		p := filepath.Join(strings.Split(gp, string(os.PathListSeparator))[0], "bin", "buf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// needBuf returns the buf command, skipping the test when there is none.
func needBuf(t *testing.T) string {
	t.Helper()
	buf := findBuf(t)
	if buf == "" {
		t.Skip("buf is not installed (go install github.com/bufbuild/buf/cmd/buf@v1.75.0; .ci/run does)")
	}
	return buf
}

// goEnv is the environment of go commands run on temporary modules: no
// workspace, go.mod completed as needed, no VCS stamping.
func goEnv() []string {
	return []string{"GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false"}
}

// command runs name with args in dir, with env added to the test's
// environment, and fails the test with its output if it fails.
func command(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := tryCommand(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return out
}

// tryCommand runs name with args in dir and returns its combined output.
func tryCommand(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

// link makes a symbolic link at newname to the directory target.
func link(t *testing.T, target, newname string) {
	t.Helper()
	abs, err := filepath.Abs(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, newname); err != nil {
		t.Fatal(err)
	}
}

// protobufVersion returns the version of google.golang.org/protobuf this
// module requires.
func protobufVersion(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(command(t, ".", nil, "go", "list", "-m", "-f", "{{.Version}}", "google.golang.org/protobuf"))
}

// tempModule makes dir a module with the path that requires this
// repository's module (replaced by the working tree) and the modules in
// replace (path to directory), with this repository's go.sum.
func tempModule(t *testing.T, dir, path string, replace map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("module " + path + "\n\ngo 1.26.0\n\nrequire (\n")
	b.WriteString("\tgithub.com/msgtrans/msgtrans-go v0.0.0\n")
	b.WriteString("\tgoogle.golang.org/protobuf " + protobufVersion(t) + "\n")
	for p := range replace {
		b.WriteString("\t" + p + " v0.0.0\n")
	}
	b.WriteString(")\n\nreplace github.com/msgtrans/msgtrans-go => " + repoRoot(t) + "\n")
	for p, d := range replace {
		b.WriteString("\nreplace " + p + " => " + d + "\n")
	}
	writeFile(t, filepath.Join(dir, "go.mod"), b.String())
	copyFile(t, filepath.Join(repoRoot(t), "go.sum"), filepath.Join(dir, "go.sum"))
}

// goPackages returns the directories under dir holding .go files, as
// ./relative paths: the go command's ./... skips directories named
// testdata, which real-world protos use.
func goPackages(t *testing.T, dir string) []string {
	t.Helper()
	var pkgs []string
	for name := range readTree(t, dir) {
		if pkg := "./" + path.Dir(name); strings.HasSuffix(name, ".go") && !slices.Contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	slices.Sort(pkgs)
	if len(pkgs) == 0 {
		t.Fatalf("no Go files under %s", dir)
	}
	return pkgs
}
