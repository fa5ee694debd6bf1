// Package chatserver is the server of the msgtrans-go chat example: it
// implements the generated [chatv1.ChatServiceHandler] and pushes room
// events to clients with the generated [chatv1.ChatEventsServicePusher].
//
// A room is a runtime group ([runtime.Server.Join]): a message posted to a
// room is encoded once and queued to every member. Each room keeps its
// latest messages (50 by default) for members who join later, within a
// byte budget shared by all rooms (see [Config.MaxHistoryBytes]); what is
// kept is copied, never part of a request, and a text over [MaxTextBytes]
// is dropped before any work is spent on it. A session is
// in at most one room at a time; joining another leaves the first, and a
// session that closes leaves its room, both announced to the room. A
// session's nick and room are session attributes ([runtime.Session.Set]).
//
// Room events go to every member, the one who caused them included, so
// all members of a room see one sequence of events, in the order the server
// accepted them: one mutex per room orders the history and the pushes.
//
// The server calls every client's Ping periodically (see
// [Config.PingInterval]) and closes sessions that do not answer; [Server.Ping]
// calls one client on demand.
//
// The command in examples/chat/server runs it with flags:
//
//	srv, err := chatserver.New(chatserver.Config{Listen: []string{"tcp://127.0.0.1:7001"}})
//	if err != nil {
//		return err
//	}
//	return srv.Serve(ctx) // until ctx is cancelled, then a graceful shutdown
package chatserver
