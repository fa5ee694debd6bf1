package main

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeQuickStart follows the README's "Define, generate, implement"
// as a new user does, from an empty directory: its shell block (go mod
// init, go get, the two go installs of the plugins), its files (the proto,
// buf.yaml, buf.gen.yaml, server/main.go, client/main.go), buf generate,
// go mod tidy, then the server and the client, over tcp and ws. The module
// comes the way a published version does: from a module proxy (a file://
// one made from this checkout's tracked files) into an empty module cache,
// every other module from the machine's module cache or, for what it lacks
// (go mod tidy reads the tests of dependencies too), the configured proxy,
// with the checksum database off. So it
// fails when the README's code or commands drift, and when the module
// cannot be installed as published (a replace directive in go.mod, say,
// makes `go install …@latest` refuse it).
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command, buf and the README's programs")
	}
	buf := needBuf(t)
	root := repoRoot(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the published module is made from the tracked files")
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout: the published module is made from the tracked files")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := readmeSection(t, string(readme), "## Define, generate, implement")

	modcache := strings.TrimSpace(command(t, ".", nil, "go", "env", "GOMODCACHE"))
	upstream := strings.TrimSpace(command(t, ".", nil, "go", "env", "GOPROXY"))
	proxy := t.TempDir()
	publish(t, root, proxy, "v0.1.0")
	gopath := t.TempDir()
	env := []string{
		"GOPATH=" + gopath, // an empty module cache; go install's bin/
		"GOPROXY=file://" + filepath.ToSlash(proxy) + ",file://" + filepath.ToSlash(filepath.Join(modcache, "cache", "download")) + "," + upstream,
		"GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local",
		"GOFLAGS=-modcacherw", // so that the test can remove the cache
		"PATH=" + filepath.Dir(buf) + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	work := t.TempDir()

	// The shell block, as written, but for the install of buf (minutes; the
	// test's buf stands in).
	script := fencedAfter(t, section, "From an empty directory", "sh")
	var lines []string
	for line := range strings.Lines(script) {
		if strings.Contains(line, "github.com/bufbuild/buf/cmd/buf@") {
			continue
		}
		lines = append(lines, line)
	}
	command(t, work, env, "sh", "-ec", strings.Join(lines, "")+"\ntest -x \"$(go env GOPATH)/bin/protoc-gen-msgtrans\"\n")
	hello := filepath.Join(work, "hello")

	// The files, with the server's two addresses moved to free ports.
	tcpAddr, wsAddr := freePort(t), freePort(t)
	moved := strings.NewReplacer("127.0.0.1:8001", tcpAddr, "127.0.0.1:8002", wsAddr)
	writeFile(t, filepath.Join(hello, "proto", "greet", "v1", "greet.proto"), fencedAfter(t, section, "`proto/greet/v1/greet.proto`:", "proto"))
	bufYAML := fencedAfter(t, section, "`buf.yaml` and `buf.gen.yaml`", "yaml")
	writeFile(t, filepath.Join(hello, "buf.yaml"), bufYAML)
	writeFile(t, filepath.Join(hello, "buf.gen.yaml"), fencedAfter(t, section[strings.Index(section, bufYAML)+len(bufYAML):], "```", "yaml"))
	writeFile(t, filepath.Join(hello, "server", "main.go"), moved.Replace(fencedAfter(t, section, "`server/main.go`:", "go")))
	writeFile(t, filepath.Join(hello, "client", "main.go"), fencedAfter(t, section, "`client/main.go`:", "go"))

	// Generate with the plugins the block installed, as the README's PATH
	// line puts them on the PATH.
	env = append(env, "PATH="+filepath.Join(gopath, "bin")+string(os.PathListSeparator)+filepath.Dir(buf)+string(os.PathListSeparator)+os.Getenv("PATH"))
	command(t, hello, env, "buf", "generate")
	run := fencedAfter(t, section, "Then let the Go command record", "sh")
	if !strings.HasPrefix(run, "go mod tidy") {
		t.Fatalf("the README's run block no longer starts with go mod tidy:\n%s", run)
	}
	command(t, hello, env, "go", "mod", "tidy")
	bin := t.TempDir()
	command(t, hello, env, "go", "build", "-o", bin, "./server", "./client")

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	server := exec.CommandContext(ctx, filepath.Join(bin, "server"))
	var serverOut strings.Builder
	server.Stdout, server.Stderr = &serverOut, &serverOut
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = server.Process.Kill()
			_ = server.Wait()
		}
	}()
	for _, addr := range []string{tcpAddr, wsAddr} {
		waitListening(t, addr)
	}
	for _, u := range []string{"tcp://" + tcpAddr, "ws://" + wsAddr + "/ws"} {
		if got := command(t, hello, nil, filepath.Join(bin, "client"), u); got != "hello, world\n" {
			t.Errorf("client %s printed %q, want \"hello, world\\n\"", u, got)
		}
	}
	// Ctrl-C stops the server cleanly.
	if err := server.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = server.Wait()
	stopped = true
	if err != nil {
		t.Errorf("the server ended with %v after SIGINT:\n%s", err, serverOut.String())
	}
}

// readmeSection returns the README from the heading to the next heading of
// the same level.
func readmeSection(t *testing.T, readme, heading string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	s := readme[i+1+len(heading):]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// fencedAfter returns the body of the first ```lang block after marker.
func fencedAfter(t *testing.T, text, marker, lang string) string {
	t.Helper()
	i := strings.Index(text, marker)
	if i < 0 {
		t.Fatalf("README.md no longer says %q", marker)
	}
	open := "```" + lang + "\n"
	j := strings.Index(text[i:], open)
	if j < 0 {
		t.Fatalf("no ```%s block after %q in README.md", lang, marker)
	}
	body := text[i+j+len(open):]
	k := strings.Index(body, "```")
	if k < 0 {
		t.Fatalf("the ```%s block after %q in README.md does not end", lang, marker)
	}
	return body[:k]
}

// publish lays out, under dir, a module proxy serving this checkout's
// module at version: what a tag would publish (the tracked files, less
// those of nested modules).
func publish(t *testing.T, root, dir, version string) {
	t.Helper()
	const module = "github.com/msgtrans/msgtrans-go"
	files := strings.Split(strings.TrimSpace(command(t, root, nil, "git", "ls-files")), "\n")
	var nested []string
	for _, f := range files {
		if path.Base(f) == "go.mod" && f != "go.mod" {
			nested = append(nested, path.Dir(f)+"/")
		}
	}
	at := filepath.Join(dir, filepath.FromSlash(module), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(at, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(bufio.NewWriter(zf))
	for _, f := range files {
		inNested := false
		for _, n := range nested {
			inNested = inNested || strings.HasPrefix(f, n)
		}
		info, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f)))
		if inNested || err != nil || !info.Mode().IsRegular() {
			continue // nested modules' files, deleted files, symbolic links
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(module + "@" + version + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(root, "go.mod"), filepath.Join(at, version+".mod"))
	writeFile(t, filepath.Join(at, version+".info"), fmt.Sprintf(`{"Version":%q,"Time":"2026-11-30T00:00:00Z"}`, version))
	writeFile(t, filepath.Join(at, "list"), version+"\n")
}

// freePort returns a loopback address with a port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits until something accepts connections at addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
