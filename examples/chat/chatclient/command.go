package chatclient

import (
	"fmt"
	"strings"
)

// commandKind says what a line of input asks for.
type commandKind int

const (
	cmdNone  commandKind = iota // an empty line: nothing to do
	cmdSay                      // arg: the text
	cmdJoin                     // arg: the room
	cmdLeave                    // no arg
	cmdNick                     // arg: the nick
	cmdWho                      // no arg
	cmdQuit                     // no arg
	cmdHelp                     // no arg
)

// command is one parsed line of input.
type command struct {
	kind commandKind
	arg  string
}

// helpText lists the commands, one line each.
var helpText = []string{
	"commands: /join ROOM, /leave, /nick NAME, /who, /quit, /help",
	"any other line is said to the room; start it with // to say a line that begins with /",
}

// parseCommand parses one line of input. A line that does not begin with
// "/" is a message; "//text" says "/text". Command names ignore case. The
// error describes a malformed command for the user.
func parseCommand(line string) (command, error) {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return command{kind: cmdNone}, nil
	case strings.HasPrefix(line, "//"):
		return command{kind: cmdSay, arg: line[1:]}, nil
	case !strings.HasPrefix(line, "/"):
		return command{kind: cmdSay, arg: line}, nil
	}
	fields := strings.Fields(line)
	name, args := strings.ToLower(fields[0]), fields[1:]
	withArg := func(kind commandKind, usage string) (command, error) {
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: %s %s", name, usage)
		}
		return command{kind: kind, arg: args[0]}, nil
	}
	noArg := func(kind commandKind) (command, error) {
		if len(args) != 0 {
			return command{}, fmt.Errorf("usage: %s (it takes no argument)", name)
		}
		return command{kind: kind}, nil
	}
	switch name {
	case "/join":
		return withArg(cmdJoin, "ROOM")
	case "/nick":
		return withArg(cmdNick, "NAME")
	case "/leave":
		return noArg(cmdLeave)
	case "/who":
		return noArg(cmdWho)
	case "/quit", "/exit":
		return noArg(cmdQuit)
	case "/help", "/?":
		return noArg(cmdHelp)
	}
	return command{}, fmt.Errorf("unknown command %s (try /help)", name)
}
