package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Cluster makes a server one node of a logical server spread over many
// processes, on a message bus between them (cluster/natscluster is the
// adapter for NATS). The runtime never imports a bus: it hands the cluster
// packets it has already encoded, says which groups and users it has local
// members of, and takes from it what other nodes send ([ClusterNode]).
//
// A session's id carries its node in its high 16 bits ([NodeOf]), so a push
// or a call to a session id goes straight to the node that holds it.
// Delivery between nodes is at most once.
//
// Implementations must be safe for concurrent use, and must never block a
// caller on the network for long: Publish queues or fails.
type Cluster interface {
	// Start joins the cluster: it picks this node's id (or checks the one
	// it was given), unique among the live nodes, and from then on hands
	// what other nodes send to n. It returns the node id, never 0.
	Start(ctx context.Context, n ClusterNode) (node uint16, err error)
	// Publish sends an encoded OneWay packet to the recipients of to that
	// other nodes hold: for a session, to its node; for a group, a user or
	// everyone, to the nodes concerned, one message per node, never one
	// per session. It fails at once (CodeUnavailable) when the bus is
	// unreachable or a session's node is not alive, and with
	// CodeInvalidArgument when the packet is too large for the bus.
	Publish(to Target, packet []byte) error
	// Call sends an encoded Request packet to the session, on the node its
	// id names, and returns the encoded Response. A node that is gone fails
	// at once with CodeUnavailable, a session that is not there with
	// CodeNotFound.
	Call(ctx context.Context, session uint64, packet []byte) ([]byte, error)
	// Interest says that this node now has (has) or no longer has a local
	// member of the named group (user false) or a session of the named user
	// identity (user true), so that it receives, or stops receiving, what
	// is published to it. It is called with a lock of the server held, in
	// the order the changes happen: it must not call back into the node.
	Interest(name string, user, has bool)
	// Members returns the ids of the group's members on every live node,
	// this one included, answering within ctx.
	Members(ctx context.Context, group string) ([]uint64, error)
	// Nodes returns the ids of the live nodes, this one included.
	Nodes(ctx context.Context) ([]uint16, error)
	// Stop leaves the cluster: other nodes stop routing to this one.
	Stop(ctx context.Context) error
}

// ClusterNode is the local server as its [Cluster] sees it: where what
// other nodes send is delivered. The cluster calls it from its own
// goroutines; none of the methods blocks on a peer.
type ClusterNode interface {
	// Deliver queues an encoded OneWay packet, from another node, to the
	// local recipients of to, with the same one-encode fan-out as a local
	// push, and returns how many it was queued to.
	Deliver(to Target, packet []byte) int
	// Call passes an encoded Request packet from another node to the local
	// session with the id and returns the encoded Response (an error
	// response when the handler fails); a session that is not here fails
	// with CodeNotFound.
	Call(ctx context.Context, session uint64, packet []byte) ([]byte, error)
	// LocalMembers returns the ids of the group's local members.
	LocalMembers(group string) []uint64
	// Lost reports that the node's connection to the bus is gone for good:
	// the server drains its clients so that they reconnect to other nodes.
	Lost(err error)
}

// WithCluster makes the server a node of a cluster (see [Cluster]). The
// cluster is started when the server first listens and left after Shutdown
// has drained the clients.
func WithCluster(c Cluster) ServerOption {
	return serverOption{"WithCluster", func(cfg *config) { cfg.cluster = c }}
}

// NodeOf returns the node a session id names: its high 16 bits, 0 for a
// server that is not in a cluster.
func NodeOf(session uint64) uint16 { return uint16(session >> sessionIDBits) }

// Node returns the server's node id in its cluster, 0 when it is in none
// (or has not started listening yet).
func (s *Server) Node() uint16 { return uint16(s.node.Load()) }

// startCluster joins the cluster, once, before the first listener accepts.
func (s *Server) startCluster(ctx context.Context) error {
	if s.cfg.cluster == nil {
		return nil
	}
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if s.node.Load() != 0 {
		return nil
	}
	node, err := s.cfg.cluster.Start(ctx, clusterNode{s})
	if err != nil {
		return fmt.Errorf("msgtrans: joining the cluster: %w", err)
	}
	if node == 0 {
		return errors.New("msgtrans: the cluster gave node id 0, which is reserved")
	}
	s.node.Store(uint32(node))
	return nil
}

// local reports whether a session id names a session of this node.
func (s *Server) local(id uint64) bool { return NodeOf(id) == s.Node() }

// publish hands a push's remote part to the cluster, when there is one and
// the target may reach other nodes.
func (s *Server) publish(to Target, f *fanout) error {
	if s.cfg.cluster == nil || (to.kind == toSession && s.local(to.id)) {
		return nil
	}
	err := s.cfg.cluster.Publish(to, f.plain)
	if ob := s.cfg.obs; ob != nil {
		ob.o.ClusterPublished(to.Kind(), len(f.plain), err == nil)
	}
	return err
}

// ClusterMembers returns the ids of the group's members on every node of
// the cluster (those of this server alone when it is in none).
func (s *Server) ClusterMembers(ctx context.Context, group string) ([]uint64, error) {
	if s.cfg.cluster == nil {
		return clusterNode{s}.LocalMembers(group), nil
	}
	return s.cfg.cluster.Members(ctx, group)
}

// Nodes returns the ids of the cluster's live nodes ([0] for a server in
// none).
func (s *Server) Nodes(ctx context.Context) ([]uint16, error) {
	if s.cfg.cluster == nil {
		return []uint16{0}, nil
	}
	return s.cfg.cluster.Nodes(ctx)
}

// callRemote calls a session of another node through the cluster.
func (s *Server) callRemote(ctx context.Context, id uint64, p *wire.Packet) (*wire.Packet, error) {
	if s.cfg.cluster == nil {
		return nil, Errorf(CodeNotFound, "no session %d", id)
	}
	q := *tracePacket(ctx, p)
	q.Type = wire.Request
	b, err := wire.AppendPacket(nil, &q)
	if err != nil {
		return nil, err
	}
	rb, err := s.cfg.cluster.Call(ctx, id, b)
	if err != nil {
		return nil, err
	}
	resp, _, err := wire.ParsePacket(rb, s.cfg.limits)
	if err != nil {
		return nil, Errorf(CodeInternal, "the response from node %d: %v", NodeOf(id), err)
	}
	if wire.IsTypedExt(&resp) {
		ext, err := wire.ParseExt(resp.Ext)
		switch {
		case err != nil:
			return nil, Errorf(CodeInternal, "the response from node %d has a bad ext header: %v", NodeOf(id), err)
		case ext.Code != CodeOK:
			return nil, &Error{Code: ext.Code, Message: ext.Message}
		}
	}
	return &resp, nil
}

// stopCluster leaves the cluster, if the server joined one.
func (s *Server) stopCluster(ctx context.Context) {
	if s.cfg.cluster == nil || s.node.Load() == 0 {
		return
	}
	if err := s.cfg.cluster.Stop(ctx); err != nil {
		s.cfg.logger.Warn("msgtrans: leaving the cluster", "err", err)
	}
}

// interest tells the cluster a group or user gained its first local member
// or lost its last.
func (s *Server) interest(name string, user, has bool) {
	if s.cfg.cluster != nil {
		s.cfg.cluster.Interest(name, user, has)
	}
}

// clusterNode is the server as its cluster sees it.
type clusterNode struct{ s *Server }

func (n clusterNode) Deliver(to Target, packet []byte) int {
	r := n.s.deliver(to, &fanout{plain: packet})
	if ob := n.s.cfg.obs; ob != nil {
		ob.o.ClusterReceived(to.Kind(), r)
	}
	return r
}

func (n clusterNode) Call(ctx context.Context, session uint64, packet []byte) ([]byte, error) {
	s := n.s
	p, _, err := wire.ParsePacket(packet, s.cfg.limits)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "the request: %v", err)
	}
	sess, err := s.session(session)
	if err != nil {
		return nil, err
	}
	resp, err := sess.Request(ctx, &p)
	if err != nil {
		// The caller's node returns the error to its caller: as an error
		// response, the way a session would.
		r := &wire.Packet{Type: wire.Response, BizType: p.BizType, Flags: wire.FlagHasRouteTag, Ext: errorExt(err)}
		return wire.AppendPacket(nil, r)
	}
	resp.Type = wire.Response
	return wire.AppendPacket(nil, resp)
}

func (n clusterNode) LocalMembers(group string) []uint64 {
	members := n.s.Members(group)
	ids := make([]uint64, len(members))
	for i, m := range members {
		ids[i] = m.id
	}
	slices.Sort(ids)
	return ids
}

func (n clusterNode) Lost(err error) {
	s := n.s
	s.cfg.logger.Error("msgtrans: the cluster is lost; draining clients so that they reconnect to other nodes", "err", err)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
}
