package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly: package wire is a leaf: it imports the standard
// library and nothing else, and the protoc plugin links it and nothing of
// the runtime or its dependencies.
func TestStandardLibraryOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	tests := []struct {
		pkg    string
		allow  []string // import path prefixes allowed beside the standard library
		forbid []string
	}{
		{".", []string{"github.com/msgtrans/msgtrans-go/wire"}, nil},
		{"../gen/protoc-gen-msgtrans", nil, []string{
			"github.com/msgtrans/msgtrans-go/runtime", "github.com/alphadose/haxmap", "github.com/quic-go/",
			"github.com/gorilla/", "github.com/klauspost/", "golang.org/x/time",
		}},
	}
	for _, tt := range tests {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", tt.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", tt.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if tt.allow != nil && !hasPrefix(dep, tt.allow) {
				t.Errorf("%s imports %s, which is not the standard library", tt.pkg, dep)
			}
			if hasPrefix(dep, tt.forbid) {
				t.Errorf("%s links %s", tt.pkg, dep)
			}
		}
	}
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
