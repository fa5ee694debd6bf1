// Package natscluster makes msgtrans-go servers on many processes (and
// machines) one logical server, over NATS (github.com/nats-io/nats.go). It
// implements runtime.Cluster; the runtime imports no NATS, and a program
// that does not import this package links none.
//
//	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
//	cl, err := natscluster.New(nc, natscluster.WithPrefix("chat"))
//	srv, err := runtime.NewServer(runtime.WithCluster(cl), …)
//	pusher.SendSaid(ctx, runtime.ToGroup("lobby"), msg) // every node's members
//	pusher.CallPing(ctx, sessionID, req)                // on whichever node holds it
//
// # Nodes
//
// Each server is a node with a 16-bit id, which its sessions' ids carry in
// their high bits. A node picks a random id (or takes the one given with
// [WithNodeID]) and probes the id's subject with a request: no responders
// means the id is free. Nodes say they are alive on the control subject
// every 3 s and are taken for dead after 7 s of silence; a node shutting
// down says it leaves.
//
// # Subjects and messages
//
// A push or call crosses NATS as the packet the origin encoded once, behind
// a small binary envelope (see envelope.go): to a session, on its node's
// subject; to a group, on the group's subject, which only nodes with a
// local member subscribe (and unsubscribe a second after their last member
// leaves, as Centrifuge does); to a user's sessions, on the user's subject;
// to everyone, on one subject. One message per node, never per session:
// the receiving node queues the same bytes to each local recipient, as for
// a local push. A call is a NATS request to the session's node; no
// responders means the node is gone, and the caller gets
// CodeUnavailable at once.
//
// # Failure model
//
// Delivery between nodes is at most once (core NATS): a message published
// while a node is disconnected, or to a node that dies before it delivers,
// is lost. A node that loses NATS keeps serving its local sessions; its
// pushes still reach local recipients and report the remote part's
// failure (CodeUnavailable), counted in [Stats]; the connection, given
// nats.MaxReconnects(-1), reconnects forever and restores every
// subscription, and [WithReconnectHandler] lets the application resync
// what it keeps. When the connection is closed for good, the node drains
// its clients (go-away) so that they reconnect to other nodes. Order holds
// per subject, not across subjects. A packet with its envelope must fit
// the NATS servers' max_payload (1 MiB by default): a larger push or call
// fails with CodeInvalidArgument; raise max_payload (2 MiB fits the
// runtime's default limits) or lower the payload limit.
package natscluster
