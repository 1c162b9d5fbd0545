package handlers

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/wsconn"
)

// sseSessionBytes is how many random bytes make a session id's secret
// part: 128 bits, unguessable.
const sseSessionBytes = 16

// sseEndedKeep is how long a node remembers the id of a stream that
// ended, so an emit to it is told 410 (reconnect) rather than 404.
const sseEndedKeep = time.Minute

// sseSession is one open SSE stream as emits find it.
type sseSession struct {
	id     string
	stream *wsconn.Stream
	client *realtime.Client
	// openToken is the token the stream was opened with ("" for a
	// guest): with a connect hook, which judges tokens itself, an emit
	// proves its identity by carrying the same one.
	openToken string
}

// sseSessions are this node's SSE streams by session id, and the ids of
// those that ended recently.
//
// Concurrency: every method may be called from any goroutine.
type sseSessions struct {
	node   string
	verify realtime.TokenVerifier // nil when TOKEN_SECRET is unset

	mu    sync.Mutex
	live  map[string]*sseSession
	ended map[string]time.Time // session id → when it ended
	order []string             // ended ids, oldest first, to forget them in order
	now   func() time.Time
}

func newSSESessions(node string, verify realtime.TokenVerifier) *sseSessions {
	return &sseSessions{
		node: node, verify: verify,
		live: make(map[string]*sseSession), ended: make(map[string]time.Time), now: time.Now,
	}
}

// newID makes a session id: this node's id, a dot, and 16 bytes from
// crypto/rand in unpadded base64url (22 characters), so any node can tell
// where to route an emit and nobody can guess one.
func (t *sseSessions) newID() string {
	var b [sseSessionBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return t.node + "." + base64.RawURLEncoding.EncodeToString(b[:])
}

// parseSessionID splits a session id into its node and reports whether
// it is well formed.
func parseSessionID(sid string) (node string, ok bool) {
	node, secret, found := strings.Cut(sid, ".")
	if !found || node == "" || len(secret) != base64.RawURLEncoding.EncodedLen(sseSessionBytes) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", false
	}
	return node, true
}

func (t *sseSessions) add(s *sseSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.live[s.id] = s
}

// end moves s to the recently ended, and forgets those ended longer ago
// than sseEndedKeep.
func (t *sseSessions) end(s *sseSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.live, s.id)
	now := t.now()
	t.ended[s.id] = now
	t.order = append(t.order, s.id)
	n := 0
	for n < len(t.order) && now.Sub(t.ended[t.order[n]]) > sseEndedKeep {
		delete(t.ended, t.order[n])
		n++
	}
	if n > 0 {
		t.order = append(t.order[:0], t.order[n:]...)
	}
}

// find returns the open session sid, or the status that explains why
// there is none: 410 if it ended recently, 404 otherwise.
func (t *sseSessions) find(sid string) (*sseSession, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.live[sid]; ok {
		return s, 0
	}
	if _, ok := t.ended[sid]; ok {
		return nil, http.StatusGone
	}
	return nil, http.StatusNotFound
}

// Deliver implements realtime.EmitHandler for this node's streams: body
// (one socket frame's worth of commands) goes to the session's client,
// whose replies come on the stream. It answers the HTTP status of the
// emit: 204, 400, 403, 404, 410 or 413.
func (t *sseSessions) Deliver(e realtime.Emit, maxBody int) int {
	if status := checkEmitBody(e.Body, maxBody); status != 0 {
		return status
	}
	s, status := t.find(e.Session)
	if s == nil {
		return status
	}
	if !t.sameIdentity(s, e.Token) {
		return http.StatusForbidden
	}
	if action := s.client.HandleFrame(e.Body); action.Close {
		s.stream.Close(wsconn.CloseCode(action.Code), action.Reason)
	}
	return http.StatusNoContent
}

// sameIdentity reports whether an emit carrying token (empty: none) comes
// from the stream's identity: a guest's emits carry no token; on a stream
// opened with a token, or signed in since, they carry that token or
// another of the same user (a refreshed one). Before a connect hook has
// named the user (it runs at the first command), the stream's own token
// is the only proof there is.
func (t *sseSessions) sameIdentity(s *sseSession, token string) bool {
	user := s.client.Info().User
	if token == "" {
		return user == "" && s.openToken == ""
	}
	if s.openToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.openToken)) == 1 {
		return true
	}
	if user == "" || t.verify == nil {
		return false
	}
	id, err := t.verify(token)
	return err == nil && id.User == user
}
