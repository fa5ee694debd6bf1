package chatserver

import (
	"context"
	"errors"
	"sync"
	"time"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// ErrUnresponsive is the close reason of a session whose client did not
// answer a Ping within [Config.PingTimeout].
var ErrUnresponsive = errors.New("chatserver: client did not answer ping")

// Ping calls the Ping method of the client of the session with the id and
// returns the round-trip time. The error is a [*runtime.Error]:
// CodeNotFound when there is no such session, CodeDeadlineExceeded when
// the client did not answer in time (without a deadline on ctx the runtime
// waits its request timeout), CodeUnimplemented when the client does not
// serve ChatEventsService.
func (s *Server) Ping(ctx context.Context, sessionID uint64) (time.Duration, error) {
	sess, ok := s.rt.Session(sessionID)
	if !ok {
		return 0, runtime.Errorf(runtime.CodeNotFound, "no session %d", sessionID)
	}
	return s.ping(ctx, sess)
}

func (s *Server) ping(ctx context.Context, sess *runtime.Session) (time.Duration, error) {
	seq := s.pingSeq.Add(1)
	start := time.Now()
	resp, err := s.events.CallPing(ctx, sess.ID(), &chatv1.PingRequest{Seq: seq})
	if err != nil {
		return 0, err
	}
	if resp.Seq != seq {
		return 0, runtime.Errorf(runtime.CodeDataLoss, "ping %d answered as %d", seq, resp.Seq)
	}
	return time.Since(start), nil
}

// pingLoop pings every session each PingInterval until ctx is cancelled.
// A round ends when every ping of it has, so pings of one session never
// overlap.
func (s *Server) pingLoop(ctx context.Context) {
	defer s.pingWG.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, sess := range s.rt.Sessions() {
			wg.Go(func() { s.checkAlive(ctx, sess) })
		}
		wg.Wait()
	}
}

// checkAlive pings one session and closes it if its client does not answer
// in time. Any answer, even "unimplemented" from a client that does not
// serve ChatEventsService, proves the client alive.
func (s *Server) checkAlive(ctx context.Context, sess *runtime.Session) {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PingTimeout)
	defer cancel()
	rtt, err := s.ping(pctx, sess)
	switch code := runtime.CodeOf(err); {
	case err == nil:
		s.log.Debug("ping answered", "session", sess.ID(), "rtt", rtt)
	case code == runtime.CodeDeadlineExceeded && ctx.Err() == nil:
		s.log.Warn("closing unresponsive session", "session", sess.ID(), "nick", nickOf(sess), "timeout", s.cfg.PingTimeout)
		sess.CloseWithReason(ErrUnresponsive)
	case code == runtime.CodeUnimplemented:
		s.log.Debug("ping not implemented by client", "session", sess.ID())
	default:
		s.log.Debug("ping failed", "session", sess.ID(), "err", err)
	}
}
