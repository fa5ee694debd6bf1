package chatserver

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// Watching: a Watch stream gets the room's events without being a member.
// Each event is handed to the room's watchers where it happens, under the
// room's lock, so that a watcher sees the order members see. In a cluster
// each node also publishes its rooms' events on NATS, and a node with
// watchers of a room subscribes to that room's events from the others.

// watchBuffer is how many events a watcher may be behind (beyond what its
// stream's window holds) before it is dropped.
const watchBuffer = 256

// watcher is one Watch stream's queue.
type watcher struct {
	events  chan *chatv1.WatchResponse
	overrun chan struct{} // closed when the queue overflowed
	once    sync.Once
}

// offer queues ev without waiting; a full queue drops the watcher.
func (w *watcher) offer(ev *chatv1.WatchResponse) {
	select {
	case w.events <- ev:
	default:
		w.once.Do(func() { close(w.overrun) })
	}
}

// watchers are the server's Watch streams by room.
type watchers struct {
	mu     sync.Mutex
	byRoom map[string]*roomWatchers
}

// roomWatchers are one room's watchers on this node, and in a cluster the
// subscription to the room's events on the other nodes.
type roomWatchers struct {
	set map[*watcher]struct{}
	sub *nats.Subscription
}

// add registers w for the room; first reports whether it is the room's
// first watcher here.
func (ws *watchers) add(room string, w *watcher) (rw *roomWatchers, first bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.byRoom == nil {
		ws.byRoom = map[string]*roomWatchers{}
	}
	rw = ws.byRoom[room]
	if rw == nil {
		rw = &roomWatchers{set: map[*watcher]struct{}{}}
		ws.byRoom[room] = rw
		first = true
	}
	rw.set[w] = struct{}{}
	return rw, first
}

// remove unregisters w; it returns the room's subscription to drop when w
// was its last watcher here.
func (ws *watchers) remove(room string, w *watcher) *nats.Subscription {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	rw := ws.byRoom[room]
	if rw == nil {
		return nil
	}
	delete(rw.set, w)
	if len(rw.set) > 0 {
		return nil
	}
	delete(ws.byRoom, room)
	return rw.sub
}

// deliver hands ev to the room's watchers on this node.
func (ws *watchers) deliver(room string, ev *chatv1.WatchResponse) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if rw := ws.byRoom[room]; rw != nil {
		for w := range rw.set {
			w.offer(ev)
		}
	}
}

// watchEvent hands an event of room r to its watchers here and, in a
// cluster, to the other nodes'. r.mu is held.
func (s *Server) watchEvent(r *room, ev *chatv1.WatchResponse) {
	s.watch.deliver(r.name, ev)
	if s.peers != nil {
		s.peers.publishEvent(r.name, ev)
	}
}

// Watch streams a room's events. See [chatv1.ChatServiceHandler].
func (s *Server) Watch(ctx context.Context, _ *runtime.Session, req *chatv1.WatchRequest, stream *runtime.ServerStream[chatv1.WatchResponse]) error {
	if err := checkName("room", req.Room); err != nil {
		return err
	}
	name := req.Room
	w := &watcher{events: make(chan *chatv1.WatchResponse, watchBuffer), overrun: make(chan struct{})}
	// Registered under the server's lock and the room's, so that the
	// history taken here and the events queued from now on neither overlap
	// nor leave a gap.
	s.mu.Lock()
	var history []*chatv1.ChatMessage
	var members []string
	r := s.rooms[name]
	if r != nil {
		r.mu.Lock()
		history, members = r.history.messages(), s.nicksLocked(r)
	}
	rw, first := s.watch.add(name, w)
	if r != nil {
		r.mu.Unlock()
	}
	s.mu.Unlock()
	defer func() {
		if sub := s.watch.remove(name, w); sub != nil {
			_ = sub.Unsubscribe()
		}
	}()
	if s.peers != nil {
		if first {
			s.peers.subscribeEvents(&s.watch, name, rw)
		}
		history = s.peers.withRemoteHistory(ctx, name, history)
		members = append(members, s.peers.remoteNicks(ctx, name)...)
		slices.Sort(members)
	}
	if err := stream.Send(&chatv1.WatchResponse{Event: &chatv1.WatchResponse_Watching{Watching: &chatv1.Watching{Room: name, Members: members, History: history}}}); err != nil {
		return err
	}
	// In a cluster a message said on another node as the watch began may
	// come both in the history and as an event: it is sent once.
	sent := make(map[msgKey]bool, len(history))
	for _, m := range history {
		sent[keyOf(m)] = true
	}
	for {
		select {
		case ev := <-w.events:
			if m := ev.GetMessage(); m != nil && len(sent) > 0 && sent[keyOf(m)] {
				continue
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-w.overrun:
			return runtime.Errorf(runtime.CodeResourceExhausted, "watching %s: more than %d events behind", name, watchBuffer)
		case <-s.stopped:
			return runtime.NewError(runtime.CodeUnavailable, "the server is shutting down")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// The clustered side of watching.

// eventsSubject is the subject of a room's events, the room in hex (room
// names may hold dots and wildcards).
func (p *peers) eventsSubject(room string) string {
	return p.prefix + ".app.events." + hex.EncodeToString([]byte(room))
}

// publishEvent sends an event of one of this node's rooms to the other
// nodes: this node's id, then the event.
func (p *peers) publishEvent(room string, ev *chatv1.WatchResponse) {
	b, err := proto.Marshal(ev)
	if err != nil {
		return
	}
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(b)), p.rt.Node())
	if err := p.nc.Publish(p.eventsSubject(room), append(msg, b...)); err != nil {
		p.log.Debug("publishing a room event", "room", room, "err", err)
	}
}

// subscribeEvents has this node's watchers of the room, rw, receive its
// events on the other nodes, until the last of them is gone.
func (p *peers) subscribeEvents(ws *watchers, room string, rw *roomWatchers) {
	sub, err := p.nc.Subscribe(p.eventsSubject(room), func(m *nats.Msg) {
		if len(m.Data) < 2 || binary.BigEndian.Uint16(m.Data) == p.rt.Node() {
			return
		}
		ev := &chatv1.WatchResponse{}
		if proto.Unmarshal(m.Data[2:], ev) == nil {
			ws.deliver(room, ev)
		}
	})
	if err == nil {
		// The subscription is in place at the NATS server before the
		// watcher is told its watch is.
		err = p.nc.FlushTimeout(surveyWait)
	}
	if err != nil {
		p.log.Warn("subscribing to a room's events on the other nodes", "room", room, "err", err)
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.byRoom[room] != rw { // its watchers left while subscribing
		_ = sub.Unsubscribe()
		return
	}
	rw.sub = sub
}
