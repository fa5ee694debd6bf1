// Package natstest runs a real NATS server (nats-server, built from
// github.com/nats-io/nats-server/v2 at a pinned version) as a separate
// process on loopback, for the tests of the NATS cluster adapter and of the
// chat across processes. The binary is built once per machine with `go
// install` into the user's cache directory (or taken from $NATS_SERVER).
package natstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the nats-server version the tests run.
const Version = "v2.15.2"

// Module is the module nats-server is built from.
const Module = "github.com/nats-io/nats-server/v2"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of the nats-server binary, building it the first
// time (about a minute on a fresh machine).
func Binary() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("NATS_SERVER"); p != "" {
			binPath = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			buildErr = err
			return
		}
		dir := filepath.Join(cache, "msgtrans-go", "nats-server-"+Version)
		binPath = filepath.Join(dir, "nats-server")
		if _, err := os.Stat(binPath); err == nil {
			return
		}
		// Built into a directory of its own, then moved into place, so that
		// test processes building at once never run a half-written file.
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "build-")
		if err != nil {
			if err = os.MkdirAll(filepath.Dir(dir), 0o755); err == nil {
				tmp, err = os.MkdirTemp(filepath.Dir(dir), "build-")
			}
			if err != nil {
				buildErr = err
				return
			}
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", Module+"@"+Version)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("natstest: building nats-server %s: %v\n%s", Version, err, out)
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		if err := os.Rename(filepath.Join(tmp, "nats-server"), binPath); err != nil && !exists(binPath) {
			buildErr = err
		}
	})
	return binPath, buildErr
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Server is a nats-server process on loopback.
type Server struct {
	t    testing.TB
	port int
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a nats-server on a free loopback port, with configuration
// lines in nats-server's format (for example "max_payload: 65536"), and
// stops it when the test ends.
func Start(t testing.TB, config ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, port: freePort(t)}
	if len(config) > 0 {
		path := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(path, []byte(strings.Join(config, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.args = []string{"-c", path}
	}
	s.start(bin)
	t.Cleanup(s.Stop)
	return s
}

// URL returns the server's client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *Server) start(bin string) {
	s.t.Helper()
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-n", "msgtrans-test"}, s.args...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), "Server is ready") {
				said = true
				ready <- nil
			}
		}
		if !said {
			ready <- errors.New("nats-server ended before it was ready")
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			s.t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s.t.Fatal("nats-server not ready within 30s")
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
}

// Stop kills the server (SIGKILL: as a crash) and waits for it; it does
// nothing when the server is stopped already.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

// Restart starts the server again, on the same port, after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	bin, err := Binary()
	if err != nil {
		s.t.Fatal(err)
	}
	s.start(bin)
}

// freePort returns a TCP port on loopback that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
