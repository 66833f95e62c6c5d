package server

import (
	"context"
	"errors"
	"fmt"

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

// login checks an API key and widens the session with its scopes. Several
// logins on one socket add up (SPEC §4.1); a failed one changes nothing.
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
	if err := checkPurpose(cur, want); err != nil {
		return nil, err
	}

	if s.logins.blocked(cur.Remote) {
		return nil, rateLimitedLogin()
	}
	key, err := s.db.Authenticate(ctx, args.APIKey)
	if errors.Is(err, lanedb.ErrBadKey) || errors.Is(err, lanedb.ErrRevokedKey) {
		s.logins.failed(cur.Remote)
		s.log.Info("login refused", "remote", cur.Remote, "reason", err)
		return nil, protocol.Errorf(protocol.CodeLoginFailed, "API key not accepted: it is unknown or has been revoked")
	}
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	next, err := withKey(cur, key, want)
	if err != nil {
		return nil, err
	}
	if sess := sessionFrom(ctx); sess != nil {
		sess.setCaller(next)
	}
	s.log.Info("login", "remote", cur.Remote, "key", key.Name, "purpose", next.Purpose, "transport", cur.Transport)
	return &protocol.Result{Data: map[string]any{
		"valid":   1,
		"purpose": string(next.Purpose),
		"scopes":  next.Scopes,
	}}, nil
}

// checkPurpose refuses a login that would change the socket's purpose:
// the URL or the first login that names one fixes it; a later login may
// name the same purpose or none (SPEC §4.1: logins widen scopes, they do
// not turn one kind of socket into another).
func checkPurpose(cur protocol.Caller, want protocol.Purpose) error {
	if want != protocol.PurposeNone && cur.Purpose != protocol.PurposeNone && cur.Purpose != want {
		return protocol.Errorf(protocol.CodeConflict, "this socket is already a %s socket and a later login cannot change that; open another socket for %s", cur.Purpose, want)
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
	if sess := sessionFrom(ctx); sess != nil {
		found = sess.cancelRequest(rq)
	}
	return &protocol.Result{Data: map[string]any{"k": rq, "cancelled": found}}, nil
}
