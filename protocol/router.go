package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Scope is a right an API key carries. Admin passes every scope check.
type Scope string

// The scopes a key may carry.
const (
	ScopePresell Scope = "presell" // tablets: build and submit presells
	ScopeCounter Scope = "counter" // checkout: recall, override prices, complete
	ScopeDisplay Scope = "display" // customer displays: read the display stream
	ScopeDebug   Scope = "debug"   // support: debugscope sockets
	ScopeAdmin   Scope = "admin"   // keys, takeovers, everything above
)

// AllScopes lists every scope in a fixed order.
var AllScopes = []Scope{ScopePresell, ScopeCounter, ScopeDisplay, ScopeDebug, ScopeAdmin}

// ParseScopes reads "presell,counter" into scopes, rejecting unknown names.
func ParseScopes(list string) ([]Scope, error) {
	var out []Scope
	seen := map[Scope]bool{}
	for _, part := range strings.Split(list, ",") {
		s := Scope(strings.TrimSpace(part))
		if s == "" || seen[s] {
			continue
		}
		if !s.Known() {
			return nil, fmt.Errorf("unknown scope %q (scopes: presell, counter, display, debug, admin)", s)
		}
		seen[s] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scope given (scopes: presell, counter, display, debug, admin)")
	}
	return out, nil
}

// Known reports whether s is one of AllScopes.
func (s Scope) Known() bool {
	for _, k := range AllScopes {
		if k == s {
			return true
		}
	}
	return false
}

// Purpose is what a socket is for: from the URL (presell) or the login
// packet (customerdisplay, debugscope). Empty is an ordinary FD1 socket.
type Purpose string

// The purposes a socket may have.
const (
	PurposeNone            Purpose = ""
	PurposePresell         Purpose = "presell"
	PurposeCustomerDisplay Purpose = "customerdisplay"
	PurposeDebugScope      Purpose = "debugscope"
)

// Caller is who sent a request: what the socket logged in as.
type Caller struct {
	// KeyID and KeyName name the key a request acts as: the one the lane
	// records as having made a change (created_by, holder, claim, journal
	// actor). The session's first key until Admit (or ActFor) picks, for one
	// request, the key whose scope allowed it.
	KeyID   string
	KeyName string
	// Logins are the keys logged in on this session, in login order, each
	// with its own scopes (several logins add up, SPEC §4.1). A caller built
	// without Logins (tests, the lane's own System callers) is one key:
	// KeyID with Scopes.
	Logins    []Login
	Scopes    []Scope // every scope of every login
	Purpose   Purpose
	Transport string // "ws" or "http"
	SocketID  uint64
	Remote    string
	// Session names this socket (or HTTP call) in the lane DB, e.g. as the
	// holder of a presell claim. Unique across restarts. What a session
	// has claimed is the sales core's business, kept there by this id.
	Session string
	// Top is the socket's top sale (SPEC §7.2), shared by every copy of
	// its caller and gone with the socket; nil for an HTTP call.
	Top *Top
}

// Top is the sale a socket's last change touched, which a request without
// k works on. It lives on the socket, not in a table of all sockets: no
// number of other sockets can push it out and send the socket's next
// k-less payment to another sale.
type Top struct {
	mu      sync.Mutex
	physkey string
}

// Get is the top sale's physkey, "" before the socket touched one.
func (t *Top) Get() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.physkey
}

// Set makes physkey the top sale.
func (t *Top) Set(physkey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.physkey = physkey
}

// Login is one key logged in on a session.
type Login struct {
	KeyID   string
	KeyName string
	Scopes  []Scope
}

// Has reports whether this key carries scope s (admin carries them all).
func (l Login) Has(s Scope) bool {
	for _, have := range l.Scopes {
		if have == s || have == ScopeAdmin {
			return true
		}
	}
	return false
}

// WithLogin is the caller after one more accepted login: l's scopes are
// added, and the first key stays the one requests act as by default. A key
// logged in twice counts once.
func (c Caller) WithLogin(l Login) Caller {
	next := c
	if !slices.ContainsFunc(c.logins(), func(have Login) bool { return have.KeyID == l.KeyID }) {
		next.Logins = append(slices.Clone(c.logins()), l)
	}
	next.Scopes = slices.Clone(c.Scopes)
	for _, s := range l.Scopes {
		if !slices.Contains(next.Scopes, s) {
			next.Scopes = append(next.Scopes, s)
		}
	}
	if !c.LoggedIn() {
		next.KeyID, next.KeyName = l.KeyID, l.KeyName
	}
	return next
}

// logins is Logins, or the caller's one key when it was built without them.
func (c *Caller) logins() []Login {
	if len(c.Logins) > 0 || c.KeyID == "" {
		return c.Logins
	}
	return []Login{{KeyID: c.KeyID, KeyName: c.KeyName, Scopes: c.Scopes}}
}

// KeyIDs lists the ids of every key logged in on the session.
func (c *Caller) KeyIDs() []string {
	var out []string
	for _, l := range c.logins() {
		out = append(out, l.KeyID)
	}
	return out
}

// HasKeyID reports whether key id is logged in on the session: what one of
// its keys holds, the session holds.
func (c *Caller) HasKeyID(id string) bool {
	return c != nil && id != "" && slices.ContainsFunc(c.logins(), func(l Login) bool { return l.KeyID == id })
}

// HasKeyName is HasKeyID by key name (the lane records some things, such as
// who created a sale, by name; names are unique among live keys).
func (c *Caller) HasKeyName(name string) bool {
	return c != nil && name != "" && slices.ContainsFunc(c.logins(), func(l Login) bool { return l.KeyName == name })
}

// ActFor reports whether the caller carries scope s and, if it does, makes
// the rest of the request act as a key that carries it: the acting key if
// it does, else the first one logged in that does. A handler calls it where
// a scope, not ownership, grants a right (a counter cancelling a tablet's
// sale), so that the change names the key whose scope allowed it.
func (c *Caller) ActFor(s Scope) bool {
	if c == nil {
		return false
	}
	logins := c.logins()
	for _, l := range logins {
		if l.KeyID == c.KeyID && l.Has(s) {
			return true
		}
	}
	for _, l := range logins {
		if l.Has(s) {
			c.KeyID, c.KeyName = l.KeyID, l.KeyName
			return true
		}
	}
	return false
}

// SeesLane reports whether the caller sees every sale of the lane, as
// counters, displays and admin do. Any other key (a presell tablet) sees
// only the sales its own keys created (DESIGN §4, tablets' view).
func (c *Caller) SeesLane() bool { return c.Has(ScopeCounter) || c.Has(ScopeDisplay) }

// ActsAsAdmin reports whether the key the caller acts as (KeyID) carries
// the admin scope: the operator's own key, which the per-key bounds on
// devices do not count.
func (c *Caller) ActsAsAdmin() bool {
	if c == nil {
		return false
	}
	for _, l := range c.logins() {
		if l.KeyID == c.KeyID {
			return slices.Contains(l.Scopes, ScopeAdmin)
		}
	}
	return false
}

// LoggedIn reports whether the caller has presented a valid key.
func (c *Caller) LoggedIn() bool { return c != nil && c.KeyID != "" }

// Has reports whether the caller carries scope s (admin carries them all).
func (c *Caller) Has(s Scope) bool {
	if c == nil {
		return false
	}
	for _, have := range c.Scopes {
		if have == s || have == ScopeAdmin {
			return true
		}
	}
	return false
}

// Access says who may call an endpoint. It is checked in one place, Allow,
// for every endpoint. Every endpoint must say who may call it: Public,
// AnyKey, or Scopes; one that says none of them cannot be registered.
type Access struct {
	// Public endpoints run before login (fd1.session.*).
	Public bool
	// AnyKey endpoints run for any logged-in key, whatever its scopes.
	AnyKey bool
	// Scopes: the caller needs any one of them (admin passes every one).
	Scopes []Scope
	// Display endpoints are the only ones a customerdisplay socket may call.
	Display bool
	// Purpose, when set, is the socket purpose the endpoint needs.
	Purpose Purpose
}

// Allow checks a caller against an endpoint's access rule.
func (e *Endpoint) Allow(c *Caller) error {
	_, err := e.actor(c)
	return err
}

// Admit checks c against the endpoint's access rule, the one place that
// does, and returns the call for the handler. The call's Caller acts as the
// key that satisfied the rule: of the keys logged in, the first that
// carries one of the scopes the endpoint needs (admin carries them all);
// for Public and AnyKey endpoints, the session's first key.
func (e *Endpoint) Admit(req *Request, c Caller) (*Call, error) {
	actor, err := e.actor(&c)
	if err != nil {
		return nil, err
	}
	if err := e.checkOptions(req); err != nil {
		return nil, err
	}
	c.KeyID, c.KeyName = actor.KeyID, actor.KeyName
	return &Call{Req: req, Caller: &c, Endpoint: e}, nil
}

// actor applies the access rule and names the key the call acts as.
func (e *Endpoint) actor(c *Caller) (Login, error) {
	a := e.Access
	acting := Login{}
	if c != nil {
		acting = Login{KeyID: c.KeyID, KeyName: c.KeyName}
	}
	if a.Public {
		return acting, nil
	}
	if !c.LoggedIn() {
		return acting, Errorf(CodeLoginRequired, "log in with fd1.session.login before calling %s", e.Name)
	}
	if c.Purpose == PurposeCustomerDisplay && !a.Display {
		return acting, Errorf(CodeForbidden, "%s is not available on a customer display socket", e.Name)
	}
	if a.Purpose != PurposeNone && c.Purpose != a.Purpose {
		return acting, Errorf(CodeForbidden, "%s needs a socket logged in with purpose %q", e.Name, a.Purpose)
	}
	if a.AnyKey {
		return acting, nil
	}
	for _, l := range c.logins() {
		for _, s := range a.Scopes {
			if l.Has(s) {
				return l, nil
			}
		}
	}
	if len(a.Scopes) == 0 { // no rule: closed (Handle refuses such endpoints)
		return acting, Errorf(CodeForbidden, "%s has no access rule", e.Name)
	}
	return acting, Errorf(CodeForbidden, "%s needs a key with scope %s", e.Name, joinScopes(a.Scopes))
}

// checkOptions refuses q, qk and mo the endpoint would otherwise ignore
// without a word: a filter it does not read, a keyword it does not know,
// a mode the lane does not offer. Ignored, each would answer a question
// the client did not ask (every row instead of a few, the top sale
// instead of the list). Keywords are compared exactly, as the SPEC spells
// them (lower case). It runs after the access rule, so a caller who may
// not call the endpoint learns nothing of what it takes.
func (e *Endpoint) checkOptions(req *Request) error {
	if e.notOffered {
		return nil // the answer is unsupported, whatever was asked
	}
	if len(req.Q) > 0 && !e.Filters {
		names := make([]string, 0, len(req.Q))
		for name := range req.Q {
			names = append(names, name)
		}
		sort.Strings(names)
		return Errorf(CodeBadFilter, "%s takes no q filters; got %s", e.Name, strings.Join(quoteAll(names), ", "))
	}
	for _, w := range req.QK {
		if !slices.Contains(e.Keywords, w) {
			if len(e.Keywords) == 0 {
				return Errorf(CodeBadArgument, "qk: %s takes no keywords; got %q", e.Name, w)
			}
			return Errorf(CodeBadArgument, "qk: %s takes %s; got %q", e.Name, strings.Join(quoteAll(e.Keywords), " or "), w)
		}
	}
	for _, m := range req.MO {
		if m != ChunkMode {
			return Errorf(CodeBadArgument, "mo: this lane offers mode %q only; got %q", ChunkMode, m)
		}
	}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// ruled reports whether the access rule says who may call.
func (a Access) ruled() bool { return a.Public || a.AnyKey || len(a.Scopes) > 0 }

func joinScopes(ss []Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, " or ")
}

// Call is one request on its way to a handler.
type Call struct {
	Req      *Request
	Caller   *Caller
	Endpoint *Endpoint
	// Session is what the request runs on: a WebSocket, or one HTTP-mode
	// call. Endpoints that act on the session itself (login, cancel,
	// firehoses) need it; nil when a request runs on none (tests).
	Session Session
	// Args is v decoded for the endpoint: by the server where the request
	// arrived when routing needed it (Endpoint.Args), else by ArgsOf on the
	// handler's first ask. Either way v is decoded once.
	Args *Args
}

// Args is a request's v, decoded once.
type Args struct {
	value any
	err   error
}

// Decoded is v as the handler decoded it (ok false when it has not, or
// could not): what the request asks for whatever the spelling, for
// comparing two requests.
func (c *Call) Decoded() (v any, ok bool) {
	if c.Args == nil || c.Args.err != nil {
		return nil, false
	}
	return c.Args.value, true
}

// DecodeArgs decodes req's v into a new value of the endpoint's Args (nil
// when the endpoint declares none). A decoding error is kept for the
// handler to answer in its turn, after the access check.
func (e *Endpoint) DecodeArgs(req *Request) *Args {
	if e.Args == nil {
		return nil
	}
	v := e.Args()
	return &Args{value: v, err: e.decodeV(req.V, v)}
}

// decodeV is DecodeV, or DecodeStrictV for an endpoint that asked for it.
func (e *Endpoint) decodeV(v json.RawMessage, dst any) error {
	if e != nil && e.StrictV {
		return DecodeStrictV(v, dst, e.Name)
	}
	return DecodeV(v, dst)
}

// ArgsOf is the call's v decoded into a T (a struct with json and validate
// tags), decoding it now if nothing has yet. Errors are bad_argument
// errors naming the field, as DecodeV's.
func ArgsOf[T any](call *Call) (*T, error) {
	if call.Args == nil {
		v := new(T)
		call.Args = &Args{value: v, err: call.Endpoint.decodeV(call.Req.V, v)}
	}
	if call.Args.err != nil {
		return nil, call.Args.err
	}
	v, ok := call.Args.value.(*T)
	if !ok {
		return nil, fmt.Errorf("endpoint %s decodes v as %T, its handler asks for %T", call.Endpoint.Name, call.Args.value, v)
	}
	return v, nil
}

// Session is the connection a request runs on, as the server that made it
// knows it. To this package and to the endpoint packages it is opaque:
// they carry it and never look inside, so nothing outside the server can
// change who a session is logged in as. The server reads it in one place.
type Session any

// Result is what a handler answers. The router wraps it in a Reply.
type Result struct {
	SC   string          // schema name of Data, if any
	K    json.RawMessage // sale key echo, if any
	Data any
}

// Handler serves one endpoint.
type Handler func(ctx context.Context, call *Call) (*Result, error)

// Endpoint is a registered FD1 endpoint.
type Endpoint struct {
	Name    string   // canonical name, with the fd1. prefix
	Aliases []string // other names, with or without fd1.
	Access  Access
	Handler Handler
	// NoReply endpoints answer nothing on success (fd1.session.ignore).
	NoReply bool
	// RouteKey names what a request works on, so that a socket that runs
	// requests in parallel keeps those with the same key in order; args is
	// v as Args decoded it (nil without Args). Default: the request's k.
	RouteKey func(req *Request, args any) string
	// Filters: the handler reads q. A request with q filters to an
	// endpoint without it is refused (bad_filter) rather than answered
	// as if it had none.
	Filters bool
	// Keywords are the qk values the handler knows; any other is refused
	// (bad_argument). None: the endpoint takes no qk.
	Keywords []string
	// StrictV: v may hold only the fields of the struct the handler
	// decodes it into (ArgsOf; protocol.NoArgs for none); any other is
	// refused (DecodeStrictV). Endpoints that change a sale or a presell
	// set it: a misspelled field there would change money or quantities
	// the client did not mean. Off, unknown fields are ignored, as login
	// needs (clients send tz, localtime, geo).
	StrictV bool
	// notOffered marks a documented endpoint this lane answers with
	// unsupported (NotOffered).
	notOffered bool
	// Args, when set, makes the value v is decoded into (a pointer to the
	// argument struct) for an endpoint whose RouteKey reads v: the server
	// then decodes v as the request arrives and hands it to the handler in
	// Call.Args. Without it v is decoded when the handler asks (ArgsOf).
	Args func() any
}

// KeyOf is the routing key of a request for this endpoint, given its
// arguments as DecodeArgs made them (nil if it made none).
func (e *Endpoint) KeyOf(req *Request, args *Args) string {
	if e.RouteKey != nil {
		var v any
		if args != nil {
			v = args.value
		}
		return e.RouteKey(req, v)
	}
	return req.Key()
}

// Router maps endpoint names (and aliases, with "fd1." optional) to endpoints.
type Router struct {
	byName    map[string]*Endpoint
	endpoints []*Endpoint
	// notOffered answers the names of NotOffered that no package serves.
	notOffered map[string]*Endpoint
	// families answers the other names of NotOffered's families, in
	// table order, after every exact name.
	families []familyEndpoint
}

// familyEndpoint is a NotOffered family and the endpoint answering it.
type familyEndpoint struct {
	prefix string
	e      *Endpoint
}

// NewRouter returns a router that serves no endpoint yet and answers the
// names of NotOffered with unsupported.
func NewRouter() *Router {
	r := &Router{byName: map[string]*Endpoint{}, notOffered: map[string]*Endpoint{}}
	for _, n := range NotOffered {
		e := notOfferedEndpoint(n)
		e.notOffered = true
		if n.Family != "" {
			r.families = append(r.families, familyEndpoint{n.Family, e})
			continue
		}
		for _, name := range n.Names {
			r.notOffered[Normalize(name)] = e
		}
	}
	return r
}

// Normalize adds the fd1. prefix when a name lacks it.
func Normalize(a string) string {
	if strings.HasPrefix(a, "fd1.") {
		return a
	}
	return "fd1." + a
}

// Handle registers an endpoint. A name registered twice is a programming
// error and panics at start-up, not at request time.
func (r *Router) Handle(e *Endpoint) {
	e.Name = Normalize(e.Name)
	if e.Handler == nil {
		panic("protocol: endpoint " + e.Name + " has no handler")
	}
	if !e.Access.ruled() {
		panic("protocol: endpoint " + e.Name + " has no access rule: set Public, AnyKey or Scopes")
	}
	for _, name := range append([]string{e.Name}, e.Aliases...) {
		name = Normalize(name)
		if _, dup := r.byName[name]; dup {
			panic("protocol: endpoint " + name + " registered twice")
		}
		r.byName[name] = e
	}
	r.endpoints = append(r.endpoints, e)
}

// Lookup finds the endpoint for a request's a.
func (r *Router) Lookup(a string) (*Endpoint, error) {
	if e, ok := r.byName[Normalize(a)]; ok {
		return e, nil
	}
	if e, ok := r.notOffered[Normalize(a)]; ok {
		return e, nil
	}
	for _, f := range r.families {
		if familyFunction(f.prefix, Normalize(a)) {
			return f.e, nil
		}
	}
	return nil, Errorf(CodeUnknownEndpoint, "no endpoint %q on this lane", a)
}

// Endpoints lists every registered endpoint, sorted by name.
func (r *Router) Endpoints() []*Endpoint {
	out := append([]*Endpoint(nil), r.endpoints...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
