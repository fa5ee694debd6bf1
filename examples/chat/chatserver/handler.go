package chatserver

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// The methods of this file implement [chatv1.ChatServiceHandler] (Watch is
// in watch.go). The runtime runs Join, Leave, Who and Nick concurrently
// (each request in a goroutine of its own), Say on the session's read
// goroutine, in order, and each Watch stream in a goroutine of its own.

// Join enters a room under a nick, leaving the session's current room
// first. See [chatv1.ChatServiceHandler]. In a cluster the answer also
// lists the room's members and messages on the other nodes.
func (s *Server) Join(ctx context.Context, sess *runtime.Session, req *chatv1.JoinRequest) (*chatv1.JoinResponse, error) {
	resp, err := s.join(sess, req)
	if err == nil && s.peers != nil {
		s.peers.withRemote(ctx, resp)
	}
	return resp, err
}

// join is Join on this node.
func (s *Server) join(sess *runtime.Session, req *chatv1.JoinRequest) (*chatv1.JoinResponse, error) {
	if err := checkName("room", req.Room); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nick := req.Nick
	if nick == "" {
		if nick = nickOf(sess); nick == "" {
			return nil, runtime.NewError(runtime.CodeInvalidArgument, "a nick is needed to join")
		}
	} else if err := checkName("nick", nick); err != nil {
		return nil, err
	}

	if r := roomOf(sess); r != nil {
		if r.name == req.Room { // already there: at most a new nick
			s.renameLocked(sess, nick)
			r.mu.Lock()
			defer r.mu.Unlock()
			return s.joinResponseLocked(r, nick), nil
		}
		s.leaveLocked(sess, r, "joined "+req.Room, true)
	}

	r := s.roomLocked(req.Room)
	r.mu.Lock()
	if err := s.rt.Join(r.name, sess); err != nil { // the session is closing
		r.mu.Unlock()
		s.dropIfEmptyLocked(r)
		return nil, runtime.NewError(runtime.CodeUnavailable, "session closed")
	}
	defer r.mu.Unlock()
	setNick(sess, nick)
	sess.Set(roomAttr, r)
	// Announced after joining the group, so the joiner hears it too: the
	// first event of a room a client receives is its own arrival.
	joined := &chatv1.MemberJoinedRequest{Room: r.name, Nick: nick}
	if _, err := s.events.SendMemberJoined(context.Background(), runtime.ToGroup(r.name), joined); err != nil {
		s.log.Error("announcing an arrival", "room", r.name, "err", err)
	}
	s.watchEvent(r, &chatv1.WatchResponse{Event: &chatv1.WatchResponse_Joined{Joined: joined}})
	s.log.Info("joined room", "session", sess.ID(), "nick", nick, "room", r.name, "transport", sess.Transport())
	return s.joinResponseLocked(r, nick), nil
}

// joinResponseLocked describes r to a member who joined as nick. r.mu is
// held, so the history and members match the events the member receives
// next.
func (s *Server) joinResponseLocked(r *room, nick string) *chatv1.JoinResponse {
	return &chatv1.JoinResponse{Room: r.name, Nick: nick, Members: s.nicksLocked(r), History: r.history.messages()}
}

// Leave leaves the current room. See [chatv1.ChatServiceHandler].
func (s *Server) Leave(_ context.Context, sess *runtime.Session, _ *chatv1.LeaveRequest) (*chatv1.LeaveResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := roomOf(sess)
	if r == nil {
		return &chatv1.LeaveResponse{}, nil
	}
	s.leaveLocked(sess, r, "left", true)
	return &chatv1.LeaveResponse{Room: r.name}, nil
}

// Say posts a message to the current room. See [chatv1.ChatServiceHandler].
// A message that cannot be posted is logged and dropped: Say is one-way, so
// there is no one to tell.
func (s *Server) Say(_ context.Context, sess *runtime.Session, req *chatv1.SayRequest) error {
	drop := func(why string) error {
		s.log.Warn("message dropped", "session", sess.ID(), "nick", nickOf(sess), "room", req.Room, "why", why)
		return nil
	}
	if len(req.Text) > MaxTextBytes {
		return drop("text too long")
	}
	text := cleanText(req.Text)
	if text == "" {
		return drop("empty text")
	}
	r := roomOf(sess)
	if r == nil {
		return drop("not in a room")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case roomOf(sess) != r: // left while we waited for the lock
		return drop("not in a room")
	case req.Room != "" && req.Room != r.name:
		return drop("in room " + r.name)
	}
	r.seq++
	m := &chatv1.ChatMessage{Room: r.name, Nick: nickOf(sess), Text: text, Time: timestamppb.New(time.Now()), Seq: r.seq}
	kept := r.history.add(m)
	// Encoded once, queued to every member, the author included.
	n, err := s.events.SendRoomMessage(context.Background(), runtime.ToGroup(r.name), &chatv1.RoomMessageRequest{Message: m})
	if err != nil {
		return err
	}
	s.watchEvent(r, &chatv1.WatchResponse{Event: &chatv1.WatchResponse_Message{Message: m}})
	s.log.Debug("message", "session", sess.ID(), "nick", m.Nick, "room", r.name, "seq", m.Seq, "kept", kept, "recipients", n)
	return nil
}

// Who lists the members of the current room. See
// [chatv1.ChatServiceHandler].
func (s *Server) Who(ctx context.Context, sess *runtime.Session, _ *chatv1.WhoRequest) (*chatv1.WhoResponse, error) {
	r := roomOf(sess)
	if r == nil {
		return nil, runtime.NewError(runtime.CodeFailedPrecondition, "not in a room")
	}
	r.mu.Lock()
	resp := &chatv1.WhoResponse{Room: r.name, Members: s.nicksLocked(r)}
	r.mu.Unlock()
	if s.peers != nil {
		resp.Members = append(resp.Members, s.peers.remoteNicks(ctx, r.name)...)
		slices.Sort(resp.Members)
	}
	return resp, nil
}

// Nick changes the session's nick. See [chatv1.ChatServiceHandler].
func (s *Server) Nick(_ context.Context, sess *runtime.Session, req *chatv1.NickRequest) (*chatv1.NickResponse, error) {
	if err := checkName("nick", req.Nick); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := nickOf(sess)
	s.renameLocked(sess, req.Nick)
	return &chatv1.NickResponse{Nick: req.Nick, PreviousNick: prev}, nil
}

// renameLocked sets the session's nick, announcing a change to its room.
// s.mu is held.
func (s *Server) renameLocked(sess *runtime.Session, nick string) {
	prev := nickOf(sess)
	if prev == nick {
		return
	}
	r := roomOf(sess)
	if r == nil {
		setNick(sess, nick)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	setNick(sess, nick)
	changed := &chatv1.NickChangedRequest{Room: r.name, PreviousNick: prev, Nick: nick}
	if _, err := s.events.SendNickChanged(context.Background(), runtime.ToGroup(r.name), changed); err != nil {
		s.log.Error("announcing a nick change", "room", r.name, "err", err)
	}
	s.watchEvent(r, &chatv1.WatchResponse{Event: &chatv1.WatchResponse_NickChanged{NickChanged: changed}})
	s.log.Info("nick changed", "session", sess.ID(), "room", r.name, "previous_nick", prev, "nick", nick)
}
