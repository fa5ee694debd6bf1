package chatserver

import (
	"cmp"
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/cluster/natscluster"
	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// ClusterConfig makes a chat server one node of a chat spread over several
// processes on one NATS system: rooms, their history and /who span every
// node. See [Config.Cluster].
type ClusterConfig struct {
	// NATS is the connection to the NATS system, which the caller owns and
	// closes after the server has shut down. Connect it with
	// nats.MaxReconnects(-1) and nats.ReconnectBufSize(-1).
	NATS *nats.Conn
	// NodeID fixes the node's id; 0 picks a free one.
	NodeID uint16
	// Prefix is the NATS subject prefix of this chat. Default "chat".
	Prefix string
}

// surveyWait bounds how long a survey of the other nodes waits for their
// answers.
const surveyWait = 500 * time.Millisecond

// peers asks the other nodes of a clustered chat what they hold of a room:
// their members' nicks, and the messages said on them. Each node answers
// from its own rooms; nothing is replicated.
type peers struct {
	nc     *nats.Conn
	prefix string
	rt     *runtime.Server
	log    *slog.Logger
	subs   []*nats.Subscription
}

// The surveys' subjects, and what each answers: the nicks of the room's
// local members (a WhoResponse), or its local history (a JoinResponse's
// History).
func (p *peers) whoSubject() string     { return p.prefix + ".app.who" }
func (p *peers) historySubject() string { return p.prefix + ".app.history" }

// clusterOptions returns the runtime option that makes the server a node,
// and the peers it will ask.
func clusterOptions(cfg *ClusterConfig, log *slog.Logger) (runtime.ServerOption, *peers, error) {
	prefix := cmp.Or(cfg.Prefix, "chat")
	cl, err := natscluster.New(cfg.NATS, natscluster.WithPrefix(prefix), natscluster.WithNodeID(cfg.NodeID), natscluster.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	return runtime.WithCluster(cl), &peers{nc: cfg.NATS, prefix: prefix, log: log}, nil
}

// serve answers the other nodes' surveys from s's rooms.
func (p *peers) serve(s *Server) error {
	answer := func(subject string, local func(room string) proto.Message) error {
		sub, err := p.nc.Subscribe(subject, func(m *nats.Msg) {
			// The request: the asking node's id, then the room.
			if m.Reply == "" || len(m.Data) < 2 || binary.BigEndian.Uint16(m.Data) == p.rt.Node() {
				return
			}
			b, err := proto.Marshal(local(string(m.Data[2:])))
			if err == nil {
				_ = m.Respond(b)
			}
		})
		p.subs = append(p.subs, sub)
		return err
	}
	if err := answer(p.whoSubject(), func(room string) proto.Message {
		return &chatv1.WhoResponse{Room: room, Members: s.localNicks(room)}
	}); err != nil {
		return err
	}
	return answer(p.historySubject(), func(room string) proto.Message {
		return &chatv1.JoinResponse{Room: room, History: s.localHistory(room)}
	})
}

func (p *peers) stop() {
	for _, sub := range p.subs {
		_ = sub.Unsubscribe()
	}
}

// survey asks every other node about the room and passes each answer to
// add, until each has answered or surveyWait passes.
func (p *peers) survey(ctx context.Context, subject, room string, into proto.Message, add func()) {
	nodes, _ := p.rt.Nodes(ctx)
	want := len(nodes) - 1 // every other node answers
	if want <= 0 || !p.nc.IsConnected() {
		return
	}
	inbox := p.nc.NewInbox()
	sub, err := p.nc.SubscribeSync(inbox)
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	req := binary.BigEndian.AppendUint16(nil, p.rt.Node())
	if err := p.nc.PublishRequest(subject, inbox, append(req, room...)); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, surveyWait)
	defer cancel()
	for got := 0; got < want; got++ {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			p.log.Debug("a survey ended before every node answered", "subject", subject, "room", room, "answers", got)
			return
		}
		proto.Reset(into)
		if proto.Unmarshal(m.Data, into) == nil {
			add()
		}
	}
}

// remoteNicks returns the nicks of the room's members on the other nodes.
func (p *peers) remoteNicks(ctx context.Context, room string) []string {
	var nicks []string
	var who chatv1.WhoResponse
	p.survey(ctx, p.whoSubject(), room, &who, func() { nicks = append(nicks, who.Members...) })
	return nicks
}

// withRemote adds the other nodes' members and messages of the room to a
// join's answer: nicks sorted, history merged by time. The two surveys run
// at once.
func (p *peers) withRemote(ctx context.Context, resp *chatv1.JoinResponse) {
	var nicks []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		nicks = p.remoteNicks(ctx, resp.Room)
	}()
	resp.History = p.withRemoteHistory(ctx, resp.Room, resp.History)
	<-done
	resp.Members = append(resp.Members, nicks...)
	slices.Sort(resp.Members)
}

// withRemoteHistory adds the other nodes' messages of the room to history,
// merged by time.
func (p *peers) withRemoteHistory(ctx context.Context, room string, history []*chatv1.ChatMessage) []*chatv1.ChatMessage {
	var hist chatv1.JoinResponse
	seen := map[msgKey]bool{}
	for _, m := range history {
		seen[keyOf(m)] = true
	}
	p.survey(ctx, p.historySubject(), room, &hist, func() {
		for _, m := range hist.History {
			if !seen[keyOf(m)] {
				seen[keyOf(m)] = true
				history = append(history, m)
			}
		}
	})
	slices.SortStableFunc(history, func(a, b *chatv1.ChatMessage) int {
		return cmp.Or(a.Time.AsTime().Compare(b.Time.AsTime()), cmp.Compare(a.Seq, b.Seq))
	})
	return history
}

// msgKey identifies a message across nodes.
type msgKey struct {
	seq  uint64
	nano int64
	nick string
}

func keyOf(m *chatv1.ChatMessage) msgKey {
	return msgKey{m.Seq, m.Time.AsTime().UnixNano(), m.Nick}
}

// localNicks returns the nicks of the room's members on this node.
func (s *Server) localNicks(room string) []string {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return s.nicksLocked(r)
}

// localHistory returns the messages of the room kept on this node.
func (s *Server) localHistory(room string) []*chatv1.ChatMessage {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.history.messages()
}

// Nodes returns the ids of the chat's live nodes (just [0] for a server
// that is not clustered).
func (s *Server) Nodes() []uint16 {
	ids, _ := s.rt.Nodes(context.Background())
	return ids
}
