package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOptionSides: an option for one side given to the other side does not
// compile (the constructors take ServerOption or ClientOption), while an
// option for both sides is accepted by both. Each snippet is built as a
// program of its own inside the module.
func TestOptionSides(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	tests := []struct {
		name    string
		code    string
		wantErr string // "" when it must build
	}{
		{"both-side options on both sides",
			`_, _ = runtime.NewServer(runtime.WithLogger(nil), runtime.WithMaxConnections(1))
			_, _ = runtime.NewClient("tcp://x:1", runtime.WithLogger(nil), runtime.WithConnectTimeout(0))`, ""},
		{"server option on a client",
			`_, _ = runtime.NewClient("tcp://x:1", runtime.WithMaxConnections(1))`, "does not implement runtime.ClientOption"},
		{"client option on a server",
			`_, _ = runtime.NewServer(runtime.WithConnectTimeout(0))`, "does not implement runtime.ServerOption"},
		{"credentials on a server",
			`_, _ = runtime.NewServer(runtime.WithCredentials(nil))`, "does not implement runtime.ServerOption"},
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A directory starting with "." is left out of ./... patterns.
			dir, err := os.MkdirTemp(filepath.Dir(wd), ".optionside-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			src := "package main\n\nimport \"github.com/msgtrans/msgtrans-go/runtime\"\n\nfunc main() {\n" + tt.code + "\n}\n"
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "vet", ".")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("does not build: %v\n%s", err, out)
			case tt.wantErr != "" && err == nil:
				t.Errorf("builds; want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(string(out), tt.wantErr):
				t.Errorf("error %s; want one containing %q", out, tt.wantErr)
			}
		})
	}
}
