package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The options without copying them: the README tells a user to reach
// msgtrans/v1/options.proto in the Go module cache, through a buf module
// linked there or a protoc -I. TestOptionsFromEmptyDirectory does what it
// says, in an empty directory, with the README's own commands and files.

// The README's commands and configuration (and docs/codegen.md's managed
// mode), which the test checks are still there word for word.
const (
	readmeLink    = `ln -sfn "$(go list -m -f '{{.Dir}}' github.com/msgtrans/msgtrans-go)/schema" msgtrans-schema`
	readmeBufYAML = "version: v2\nmodules:\n  - path: proto\n  - path: msgtrans-schema\n"
	readmeGenYAML = "version: v2\nplugins:\n  - local: protoc-gen-go\n    out: gen\n    opt: paths=source_relative\n" +
		"  - local: protoc-gen-msgtrans\n    out: gen\n    opt: paths=source_relative\ninputs:\n  - directory: proto\n"
	docsManaged = "managed:\n  enabled: true\n  override:\n    - file_option: go_package_prefix\n      value: example.com/hello/gen\n" +
		"  disable:\n    - file_option: go_package\n      path: msgtrans\n"
	readmeProtoc = `protoc -I proto -I "$(go list -m -f '{{.Dir}}' github.com/msgtrans/msgtrans-go)/schema" --go_out=gen --go_opt=paths=source_relative --msgtrans_out=gen --msgtrans_opt=paths=source_relative proto/greet/v1/greet.proto`
)

// greetProto is the README's greet.proto with its GreetedService added.
const greetProto = `syntax = "proto3";

package greet.v1;

import "msgtrans/v1/options.proto";

option go_package = "example.com/hello/gen/greet/v1;greetv1";

// GreetService greets whoever calls it.
service GreetService {
  // Greet returns a greeting for the name it is given.
  rpc Greet(GreetRequest) returns (GreetResponse);
}

// GreetedService is served by clients.
service GreetedService {
  option (msgtrans.v1.service).direction = DIRECTION_SERVER_TO_CLIENT;

  // Greeted says who was just greeted.
  rpc Greeted(GreetedRequest) returns (GreetedResponse) {
    option (msgtrans.v1.method).one_way = true;
  }
}

message GreetRequest { string name = 1; }
message GreetResponse { string greeting = 1; }
message GreetedRequest { string name = 1; }
message GreetedResponse {}
`

func TestOptionsFromEmptyDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs buf, protoc and the go command")
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{readmeLink, "```yaml\n" + readmeBufYAML + "```", "```yaml\n" + readmeGenYAML + "```", readmeProtoc} {
		if !strings.Contains(string(readme), s) {
			t.Fatalf("README.md no longer says\n%s\nupdate this test with it", s)
		}
	}
	codegen, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "codegen.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(codegen), "```yaml\n"+docsManaged+"```") {
		t.Fatalf("docs/codegen.md no longer says\n%s\nupdate this test with it", docsManaged)
	}

	// The commands a user has installed: the two plugins (and buf and
	// protoc, when they are there) on the PATH.
	bin := t.TempDir()
	command(t, ".", nil, "go", "build", "-o", filepath.Join(bin, "protoc-gen-go"), "google.golang.org/protobuf/cmd/protoc-gen-go")
	command(t, ".", nil, "go", "build", "-o", filepath.Join(bin, "protoc-gen-msgtrans"), ".")
	buf := findBuf(t)
	path := bin
	if buf != "" {
		path += string(os.PathListSeparator) + filepath.Dir(buf)
	}
	env := append(goEnv(), "PATH="+path+string(os.PathListSeparator)+os.Getenv("PATH"))

	// An empty module that requires msgtrans-go (go get, in the README;
	// here the working tree stands in for the published module).
	dir := filepath.Join(t.TempDir(), "hello")
	writeFile(t, filepath.Join(dir, "proto", "greet", "v1", "greet.proto"), greetProto)
	command(t, dir, env, "go", "mod", "init", "example.com/hello")
	command(t, dir, env, "go", "mod", "edit", "-require=github.com/msgtrans/msgtrans-go@v0.0.0", "-replace=github.com/msgtrans/msgtrans-go="+repoRoot(t))
	copyFile(t, filepath.Join(repoRoot(t), "go.sum"), filepath.Join(dir, "go.sum"))
	sh := func(line string) { command(t, dir, env, "sh", "-c", line) }

	generated := []string{"gen/greet/v1/greet.pb.go", "gen/greet/v1/greet_msgtrans.pb.go"}
	check := func(t *testing.T) {
		t.Helper()
		for _, f := range generated {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s was not generated: %v", f, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "gen", "msgtrans")); err == nil {
			t.Error("the options were generated into the user's tree")
		}
		command(t, dir, env, "go", "build", "./...")
		command(t, dir, env, "go", "vet", "./...")
	}

	t.Run("buf", func(t *testing.T) {
		if buf == "" {
			t.Skip("buf is not installed (go install github.com/bufbuild/buf/cmd/buf@v1.75.0; .ci/run does)")
		}
		sh(readmeLink)
		writeFile(t, filepath.Join(dir, "buf.yaml"), readmeBufYAML)
		writeFile(t, filepath.Join(dir, "buf.gen.yaml"), readmeGenYAML)
		command(t, dir, env, "buf", "generate")
		check(t)
	})
	t.Run("buf managed mode", func(t *testing.T) {
		if buf == "" {
			t.Skip("buf is not installed")
		}
		if err := os.RemoveAll(filepath.Join(dir, "gen")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "buf.gen.yaml"), strings.Replace(readmeGenYAML, "plugins:", strings.TrimSuffix(docsManaged, "\n")+"\nplugins:", 1))
		command(t, dir, env, "buf", "generate")
		check(t)
	})
	t.Run("protoc", func(t *testing.T) {
		if _, err := exec.LookPath("protoc"); err != nil {
			t.Skip("protoc is not installed (CI installs protobuf-compiler)")
		}
		if err := os.RemoveAll(filepath.Join(dir, "gen")); err != nil {
			t.Fatal(err)
		}
		sh("mkdir -p gen && " + readmeProtoc)
		check(t)
	})
}
