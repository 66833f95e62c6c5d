package server

import (
	"context"
	"errors"
	"fmt"
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
	if want != protocol.PurposeNone && cur.Purpose != protocol.PurposeNone && cur.Purpose != want {
		return nil, protocol.Errorf(protocol.CodeConflict, "this socket is already a %s socket; open another socket for %s", cur.Purpose, want)
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
	if need, ok := purposeScope[next.Purpose]; ok && !next.Has(need) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "a %s socket needs a key with scope %s; key %q has %s",
			next.Purpose, need, key.Name, key.Scopes)
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
