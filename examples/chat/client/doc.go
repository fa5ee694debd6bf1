// Command client is the msgtrans-go chat example's client. It reads lines
// from standard input and prints the room's events to standard output, one
// line each.
//
//	go run ./examples/chat/client -server quic://127.0.0.1:7003 -insecure -nick alice -room lobby
//
// Lines are messages, or commands: /join ROOM, /leave, /nick NAME, /who,
// /quit, /help. It works with a pipe as standard input: at the end of the
// input it sends what is left and exits 0. It reconnects by itself when the
// server restarts. Ctrl-C quits. Bad flags exit with status 2, other
// failures (such as a server that cannot be reached) with status 1.
package main
