package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

const cancelEndpoint = "fd1.session.cancel_request"

func (s *Server) registerSession() {
	public := protocol.Access{Public: true}
	s.router.Handle(&protocol.Endpoint{Name: "fd1.session.login", Access: public, Handler: s.login})
	s.router.Handle(&protocol.Endpoint{Name: "fd1.session.ignore", Access: public, NoReply: true,
		Handler: func(context.Context, *protocol.Call) (*protocol.Result, error) { return nil, nil }})
	s.router.Handle(&protocol.Endpoint{Name: cancelEndpoint, Access: protocol.Access{AnyKey: true}, Handler: s.cancelRequest})
}

// loginArgs is v of fd1.session.login (SPEC §4.2).
type loginArgs struct {
	APIKey         string `json:"apikey" validate:"max=200"`
	Token          string `json:"token"`
	EncryptionUser string `json:"encryption_user"`
	URL            string `json:"url"`
	Purpose        string `json:"purpose" validate:"omitempty,oneof=customerdisplay debugscope presell"`
	// tz, localtime and geo are accepted and not used.
}

// purposeScope is the scope a key needs for each login purpose.
var purposeScope = map[protocol.Purpose]protocol.Scope{
	protocol.PurposePresell:         protocol.ScopePresell,
	protocol.PurposeCustomerDisplay: protocol.ScopeDisplay,
	protocol.PurposeDebugScope:      protocol.ScopeDebug,
}

// login is fd1.session.login: it checks an API key and widens the socket's
// session with its scopes. Several logins on one socket add up (SPEC
// §4.1); a failed one changes nothing.
func (s *Server) login(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args loginArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	switch {
	case args.Token != "" || args.EncryptionUser != "" || args.URL != "":
		return nil, protocol.Errorf(protocol.CodeUnsupported, "this lane accepts API key logins only: send v.apikey")
	case args.APIKey == "":
		return nil, protocol.Errorf(protocol.CodeBadArgument, "v.apikey is required")
	}
	cur := *call.Caller
	want := protocol.Purpose(args.Purpose)
	if want == protocol.PurposePresell {
		return nil, protocol.Errorf(protocol.CodeBadArgument,
			"v.purpose: presell is chosen on the URL (/fd1/open_websocket?purpose=presell), not in the login packet")
	}
	if want != protocol.PurposeNone && cur.Purpose != protocol.PurposeNone && cur.Purpose != want {
		return nil, protocol.Errorf(protocol.CodeConflict, "this socket is already a %s socket; open another socket for %s", cur.Purpose, want)
	}
	next, err := s.logIn(ctx, sessionFrom(ctx), cur, args.APIKey, want)
	if err != nil {
		return nil, err
	}
	return &protocol.Result{Data: map[string]any{
		"valid":   1,
		"purpose": string(next.Purpose),
		"scopes":  next.Scopes,
	}}, nil
}

// Messages of the one login path, the same over sockets and HTTP mode.
const (
	msgKeyRefused = "API key not accepted: it is unknown or has been revoked"
	msgNoHTTPKey  = "HTTP mode has no login packet: send your API key in the x-api-key header"
)

// logIn is the one login path, for fd1.session.login on a socket and for
// the x-api-key header of an HTTP-mode call. It always checks the key, so
// a correct key gets in whatever its address tried before; only failures
// are counted and, past the address's budget, answered rate_limited. A
// login that succeeds sets sess's caller and returns it; one that is
// refused changes nothing and logs one line with the address and, when
// the key is known, its name (never the key).
func (s *Server) logIn(ctx context.Context, sess session, cur protocol.Caller, apikey string, want protocol.Purpose) (protocol.Caller, error) {
	key, err := s.db.Authenticate(ctx, apikey)
	if errors.Is(err, lanedb.ErrBadKey) || errors.Is(err, lanedb.ErrRevokedKey) {
		name := ""
		if key != nil { // revoked: the key is known
			name = key.Name
		}
		if wait := s.logins.failed(cur.Remote); wait > 0 {
			err := rateLimitedLogin(wait)
			s.loginRefused(cur, name, err)
			return cur, err
		}
		s.loginRefused(cur, name, err)
		return cur, protocol.Errorf(protocol.CodeLoginFailed, msgKeyRefused)
	}
	if err != nil {
		return cur, fmt.Errorf("login: %w", err)
	}
	next := callerWithKey(cur, key, want)
	if need, ok := purposeScope[next.Purpose]; ok && !next.Has(need) {
		err := protocol.Errorf(protocol.CodeForbidden, "a %s socket needs a key with scope %s; key %q has %s",
			next.Purpose, need, key.Name, key.Scopes)
		s.loginRefused(cur, key.Name, err)
		return cur, err
	}
	if sk, ok := sess.(*socket); ok {
		if err := s.admitKey(sk.door, key); err != nil {
			s.loginRefused(cur, key.Name, err)
			return cur, err
		}
	}
	if sess != nil {
		sess.setCaller(next)
	}
	level := slog.LevelInfo
	if cur.Transport == "http" {
		level = slog.LevelDebug // one line per HTTP call would drown the log
	}
	s.log.Log(ctx, level, "login", "remote", cur.Remote, "key", key.Name, "purpose", next.Purpose, "transport", cur.Transport)
	return next, nil
}

// callerWithKey is cur after a successful login with key.
func callerWithKey(cur protocol.Caller, key *lanedb.APIKey, want protocol.Purpose) protocol.Caller {
	scopes := make([]protocol.Scope, 0, 5)
	for _, name := range key.ScopeList() {
		scopes = append(scopes, protocol.Scope(name))
	}
	next := cur
	next.Scopes = unionScopes(cur.Scopes, scopes)
	next.Keys = append(append([]string(nil), cur.Keys...), key.KeyID)
	if !cur.LoggedIn() {
		next.KeyID, next.KeyName = key.KeyID, key.Name
	}
	if want != protocol.PurposeNone {
		next.Purpose = want
	}
	return next
}

// loginRefused logs a refused login: one line, the address, the key's
// name when the key is known, and why.
func (s *Server) loginRefused(c protocol.Caller, keyName string, why error) {
	args := []any{"remote", c.Remote, "transport", c.Transport}
	if keyName != "" {
		args = append(args, "key", keyName)
	}
	s.log.Info("login refused", append(args, "reason", why.Error())...)
}

func unionScopes(a, b []protocol.Scope) []protocol.Scope {
	out := append([]protocol.Scope(nil), a...)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// cancelRequest is fd1.session.cancel_request: k is the rq to stop. Best
// effort: a request that already committed keeps its effect.
func (s *Server) cancelRequest(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	rq := call.Req.Key()
	if rq == "" {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "k: give the rq of the request to cancel")
	}
	found := false
	if sess := sessionFrom(ctx); sess != nil {
		found = sess.cancelRequest(rq)
	}
	return &protocol.Result{Data: map[string]any{"k": rq, "cancelled": found}}, nil
}
