// Package chatclient is the client of the msgtrans-go chat example: it
// calls the generated [chatv1.ChatServiceClient] and serves
// [chatv1.ChatEventsServiceHandler], turning lines of input into messages
// and commands and the server's events into lines of output.
//
// [Run] is the whole client; the command in examples/chat/client gives it
// flags, standard input and output, and Ctrl-C.
//
// # Output
//
// Every event is one line, in a format stable enough for scripts:
//
//	[room] nick: text              a message (the client's own ones too)
//	[room 15:04:05] nick: text     a message from the room's history (local time)
//	* nick joined room             someone joined (this client included)
//	* nick left room               someone left (this client included)
//	* old is now known as new      someone changed nick (this client included)
//	* members of room: a, b, c     the answer to /who, and after each join
//	! text                         the client's own notices and errors
//
// The server sends a room's events to every member, the author included,
// so every member prints the same sequence of room lines; a client's own
// messages appear when the server has accepted them. Text from the server
// is printed with control characters replaced, so that it can neither
// break a line nor drive the terminal.
//
// # Reconnection
//
// The runtime reconnects by itself; on each [runtime.Reconnected] event the
// client joins its room again under its nick, printing only the history it
// has not printed yet (nothing, after a server restart). Input waits while
// the connection is down.
package chatclient
