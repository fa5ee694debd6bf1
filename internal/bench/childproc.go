package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// lineWriter writes whole lines from any goroutine.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}

// clientProc is the parent's handle on a child process (clients, or the
// idle scenario's server).
type clientProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	e     *env
}

// startClients starts a clients process with the arguments and waits until
// it has dialed (READY); it returns the process and the number connected.
func startClients(e *env, timeout time.Duration, args ...string) (*clientProc, int, error) {
	p, f, err := startChild(e, timeout, e.certs.Server.Certificates[0].Certificate[0], clientsCommand, args...)
	if err != nil {
		return nil, 0, err
	}
	connected, _ := strconv.Atoi(f[1])
	if f[2] != "0" {
		e.logf("clients: %s dials failed: %s", f[2], strings.Join(f[3:], " "))
	}
	return p, connected, nil
}

// startChild runs this program with the hidden subcommand and arguments
// and waits for its READY line, whose fields it returns.
// cert is the DER of the certificate the child's clients trust.
func startChild(e *env, timeout time.Duration, cert []byte, command string, args ...string) (*clientProc, []string, error) {
	cmd := exec.Command(os.Args[0], append([]string{command}, args...)...)
	cmd.Env = append(os.Environ(), certEnv+"="+base64.StdEncoding.EncodeToString(cert))
	cmd.Stderr = e.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	p := &clientProc{cmd: cmd, in: in, lines: make(chan string, 16), e: e}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(outp)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	f, err := p.expect("READY", timeout)
	if err != nil {
		p.quit()
		return nil, nil, err
	}
	return p, f, nil
}

// expect waits for a line starting with word and returns its fields,
// logging progress lines on the way.
func (p *clientProc) expect(word string, timeout time.Duration) ([]string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return nil, errors.New("clients process exited")
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if f[0] == "PROGRESS" {
				p.e.logf("clients: %s connected", f[1])
				continue
			}
			if f[0] == word {
				return f, nil
			}
			p.e.logf("clients: unexpected %q", line)
		case <-t.C:
			return nil, fmt.Errorf("clients process: no %s within %v", word, timeout)
		}
	}
}

func (p *clientProc) send(line string) error {
	_, err := io.WriteString(p.in, line+"\n")
	return err
}

// quit tells the process to exit and waits for it (killing it after a
// while).
func (p *clientProc) quit() {
	_ = p.send("QUIT")
	_ = p.in.Close()
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
