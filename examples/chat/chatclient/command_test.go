package chatclient

import "testing"

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line    string
		want    command
		wantErr string
	}{
		{line: "", want: command{kind: cmdNone}},
		{line: "   ", want: command{kind: cmdNone}},
		{line: "hello there", want: command{kind: cmdSay, arg: "hello there"}},
		{line: "  padded  \r", want: command{kind: cmdSay, arg: "padded"}},
		{line: "//join is a word", want: command{kind: cmdSay, arg: "/join is a word"}},
		{line: "// ", want: command{kind: cmdSay, arg: "/"}},
		{line: "/join kitchen", want: command{kind: cmdJoin, arg: "kitchen"}},
		{line: "/JOIN  kitchen ", want: command{kind: cmdJoin, arg: "kitchen"}},
		{line: "/join", wantErr: "usage: /join ROOM"},
		{line: "/join a b", wantErr: "usage: /join ROOM"},
		{line: "/nick bob", want: command{kind: cmdNick, arg: "bob"}},
		{line: "/nick", wantErr: "usage: /nick NAME"},
		{line: "/who", want: command{kind: cmdWho}},
		{line: "/who cares", wantErr: "usage: /who (it takes no argument)"},
		{line: "/leave", want: command{kind: cmdLeave}},
		{line: "/quit", want: command{kind: cmdQuit}},
		{line: "/exit", want: command{kind: cmdQuit}},
		{line: "/help", want: command{kind: cmdHelp}},
		{line: "/dance", wantErr: "unknown command /dance (try /help)"},
		{line: "/", wantErr: "unknown command / (try /help)"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parseCommand(tt.line)
			switch {
			case tt.wantErr != "":
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("parseCommand(%q) = %+v, %v; want error %q", tt.line, got, err, tt.wantErr)
				}
			case err != nil || got != tt.want:
				t.Errorf("parseCommand(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
			}
		})
	}
}
