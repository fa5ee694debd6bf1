package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Scenarios that start child processes run this test binary as the
	// child (os.Args[0]); it then acts as the tool would.
	if len(os.Args) > 1 && (os.Args[1] == clientsCommand || os.Args[1] == idleServerCommand) {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}
