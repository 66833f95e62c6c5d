package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
	// Purpose is checked by login itself (loginPurpose): the rule's own
	// message would list presell, which a login packet cannot ask for.
	Purpose string `json:"purpose"`
	// tz, localtime and geo are accepted and not used.
}

// loginPurpose reads a login's v.purpose: customerdisplay or debugscope
// (or none); presell is chosen on the URL, and both refusals say so.
func loginPurpose(p string) (protocol.Purpose, error) {
	const onURL = "presell is chosen on the URL (/fd1/open_websocket?purpose=presell), not in the login packet"
	switch want := protocol.Purpose(p); want {
	case protocol.PurposeNone, protocol.PurposeCustomerDisplay, protocol.PurposeDebugScope:
		return want, nil
	case protocol.PurposePresell:
		return "", protocol.Errorf(protocol.CodeBadArgument, "v.purpose: %s", onURL)
	}
	return "", protocol.Errorf(protocol.CodeBadArgument,
		"v.purpose: must be customerdisplay or debugscope, got %q; %s", clip(p), onURL)
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
	args, err := protocol.ArgsOf[loginArgs](call)
	if err != nil {
		return nil, err
	}
	given := 0
	for _, cred := range []string{args.APIKey, args.Token, args.EncryptionUser} {
		if cred != "" {
			given++
		}
	}
	switch {
	case given > 1:
		// SPEC §4.2: exactly one credential. Which one would the lane check?
		return nil, protocol.Errorf(protocol.CodeBadArgument, "send exactly one of apikey, token, encryption_user")
	case args.Token != "" || args.EncryptionUser != "" || args.URL != "":
		return nil, protocol.Errorf(protocol.CodeUnsupported, "this lane accepts API key logins only: send v.apikey")
	case args.APIKey == "":
		return nil, protocol.Errorf(protocol.CodeBadArgument, "v.apikey is required")
	}
	cur := *call.Caller
	want, err := loginPurpose(args.Purpose)
	if err != nil {
		return nil, err
	}
	if err := checkPurpose(cur, want); err != nil {
		return nil, err
	}
	next, err := s.logIn(ctx, sessionOf(call), cur, args.APIKey, want)
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
	if sk, ok := sess.(*socket); ok {
		// Not closed to make room for another while its key is checked.
		s.checkingLogin(sk.door, true)
		defer s.checkingLogin(sk.door, false)
	}
	key, err := s.db.Authenticate(ctx, apikey)
	if errors.Is(err, lanedb.ErrBadKey) || errors.Is(err, lanedb.ErrRevokedKey) {
		name := ""
		if key != nil { // revoked: the key is known
			name = key.Name
		}
		// Only failures are counted and slowed: a correct key is checked
		// and let in whatever its address did before.
		if wait := s.logins.Take(cur.Remote); wait > 0 {
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
	next, err := withKey(cur, key, want)
	if err != nil {
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
	if s.observer != nil {
		s.observer.Login("ok")
	}
	return next, nil
}

// loginRefused logs a refused login: one line, the address, the key's
// name when the key is known, and why.
func (s *Server) loginRefused(c protocol.Caller, keyName string, why error) {
	args := []any{"remote", c.Remote, "transport", c.Transport}
	if keyName != "" {
		args = append(args, "key", keyName)
	}
	// A caller without a key decides how often this happens: the line is
	// within its address's budget.
	s.logStranger(c.Remote, slog.LevelInfo, "login refused", append(args, "reason", why.Error())...)
	if s.observer != nil {
		s.observer.Login(refusalReason(why))
	}
}

// checkPurpose refuses a login that would change the socket's purpose:
// the URL or the socket's first login fixes it (an ordinary socket stays
// ordinary); a later login may name the same purpose or none (SPEC §4.1:
// logins widen scopes, they do not turn one kind of socket into another).
func checkPurpose(cur protocol.Caller, want protocol.Purpose) error {
	if want == protocol.PurposeNone || want == cur.Purpose {
		return nil
	}
	if cur.Purpose != protocol.PurposeNone {
		return protocol.Errorf(protocol.CodeConflict, "this socket is already a %s socket and a later login cannot change that; open another socket for %s", cur.Purpose, want)
	}
	if cur.LoggedIn() {
		return protocol.Errorf(protocol.CodeConflict, "this socket logged in as an ordinary socket and a later login cannot make it a %s socket; open another socket for %s", want, want)
	}
	return nil
}

// withKey is the session after key k logged in on it (asking for purpose
// want, or none): the key is remembered with its own scopes, so each
// request can be recorded under the key whose scope allowed it.
func withKey(cur protocol.Caller, k *lanedb.APIKey, want protocol.Purpose) (protocol.Caller, error) {
	if err := checkPurpose(cur, want); err != nil {
		return cur, err
	}
	login := protocol.Login{KeyID: k.KeyID, KeyName: k.Name}
	for _, name := range k.ScopeList() {
		login.Scopes = append(login.Scopes, protocol.Scope(name))
	}
	next := cur.WithLogin(login)
	if want != protocol.PurposeNone {
		next.Purpose = want
	}
	if need, ok := purposeScope[next.Purpose]; ok && !next.Has(need) {
		return cur, protocol.Errorf(protocol.CodeForbidden, "a %s socket needs a key with scope %s; key %q has %s",
			next.Purpose, need, k.Name, k.Scopes)
	}
	return next, nil
}

// cancelRequest is fd1.session.cancel_request: k is the rq to stop. Best
// effort: a request that already committed keeps its effect.
func (s *Server) cancelRequest(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	rq := call.Req.Key()
	if rq == "" {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "k: give the rq of the request to cancel")
	}
	found := false
	if sess := sessionOf(call); sess != nil {
		found = sess.cancelRequest(rq)
	}
	return &protocol.Result{Data: map[string]any{"k": rq, "cancelled": found}}, nil
}
