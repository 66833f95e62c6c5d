package transcript

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Placeholders: a JSON string in a pattern that starts with "$" is one of
// these (or "$NAME", a captured variable). "$$…" is the literal string "$…".
const (
	Any      = "$any"      // any value, null included (the field must be present)
	Absent   = "$absent"   // as an object field: the field must not be there
	NumberP  = "$number"   // any number
	StringP  = "$string"   // any string
	BoolP    = "$bool"     // true or false
	ObjectP  = "$object"   // any object
	ArrayP   = "$array"    // any array
	DateTime = "$datetime" // a string like 2026-11-27 08:32:58 or 2026-11-26T19:35:12Z
	UUID     = "$uuid"     // a string shaped like a UUID
	Physkey  = "$physkey"  // the same as $uuid: the lane's keys are UUIDs
	More     = "$more"     // as the last element of an array: more elements may follow
	Exact    = "$exact"    // as an object key with value true: no fields beyond the pattern's

	capturePrefix = "$capture:" // "$capture:NAME" matches anything and binds NAME
	newPrefix     = "$new:"     // in a sent packet, "$new:NAME" is a fresh UUID bound to NAME
)

var (
	uuidShape     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	datetimeShape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$`)
	varName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// keywords are the placeholder words that cannot name a variable.
var keywords = map[string]bool{}

func init() {
	for _, p := range []string{Any, Absent, NumberP, StringP, BoolP, ObjectP, ArrayP, DateTime, UUID, Physkey, More, Exact} {
		keywords[p[1:]] = true
	}
	keywords["capture"], keywords["new"] = true, true
}

// IsUUID reports whether s is shaped like a UUID.
func IsUUID(s string) bool { return uuidShape.MatchString(s) }

// IsDateTime reports whether s is shaped like a date and time.
func IsDateTime(s string) bool { return datetimeShape.MatchString(s) }

// Vars are the values captured so far, by name (without the "$").
type Vars map[string]Value

func (v Vars) copy() Vars {
	c := make(Vars, len(v))
	for k, x := range v {
		c[k] = x
	}
	return c
}

// Mismatch is one way a packet differs from its pattern.
type Mismatch struct {
	Path string // where, e.g. data.rows[0].saletotal ("" is the whole packet)
	Want string // what the pattern asked for, for people
	Got  string // what came, for people ("(missing)" when the field is absent)
	// Numbers: a number came where the pattern has another number. That
	// is what a lane's data decides (a price, a total), not its shape.
	Numbers bool
}

func (m Mismatch) String() string {
	path := m.Path
	if path == "" {
		path = "(packet)"
	}
	return fmt.Sprintf("%s: expected %s, got %s", path, m.Want, m.Got)
}

const missing = "(missing)"

// Match compares a packet with a pattern. With no mismatch, the pattern's
// captures are added to vars; otherwise vars is unchanged.
//
// Rules: literals must be equal (numbers by value); an object pattern
// matches an object holding at least its fields, unless it has
// "$exact": true; an array pattern matches an array of the same length,
// element by element, unless its last element is "$more" (then the
// array may be longer); strings starting with "$" are placeholders.
func Match(pattern, got Value, vars Vars) []Mismatch {
	m := matcher{vars: vars.copy()}
	m.match("", pattern, got)
	if len(m.out) == 0 {
		for k, v := range m.vars {
			vars[k] = v
		}
	}
	return m.out
}

type matcher struct {
	vars Vars
	out  []Mismatch
}

func (m *matcher) fail(path, want string, got Value) {
	m.out = append(m.out, Mismatch{Path: path, Want: want, Got: show(got)})
}

func (m *matcher) match(path string, p, got Value) {
	switch {
	case p.Kind == String && strings.HasPrefix(p.Str, "$") && !strings.HasPrefix(p.Str, "$$"):
		m.placeholder(path, p.Str, got)
	case p.Kind == String && strings.HasPrefix(p.Str, "$$"):
		if got.Kind != String || got.Str != p.Str[1:] {
			m.fail(path, show(Str(p.Str[1:])), got)
		}
	case p.Kind == Object && got.Kind == Object:
		m.object(path, p, got)
	case p.Kind == Array && got.Kind == Array:
		m.array(path, p, got)
	case !Equal(p, got):
		m.fail(path, show(p), got)
		m.out[len(m.out)-1].Numbers = p.Kind == Number && got.Kind == Number
	}
}

func (m *matcher) object(path string, p, got Value) {
	exact := false
	for i, k := range p.Keys {
		if k == Exact {
			exact = p.Vals[i].Kind == Bool && p.Vals[i].Bool
			continue
		}
		sub := joinKey(path, k)
		want := p.Vals[i]
		g, ok := got.Get(k)
		switch {
		case want.Kind == String && want.Str == Absent:
			if ok {
				m.fail(sub, "no such field", g)
			}
		case !ok:
			m.out = append(m.out, Mismatch{Path: sub, Want: showPattern(want, m.vars), Got: missing})
		default:
			m.match(sub, want, g)
		}
	}
	if !exact {
		return
	}
	for i, k := range got.Keys {
		if _, ok := p.Get(k); !ok {
			m.fail(joinKey(path, k), "no such field ($exact)", got.Vals[i])
		}
	}
}

func (m *matcher) array(path string, p, got Value) {
	elems := p.Elem
	open := len(elems) > 0 && elems[len(elems)-1].Kind == String && elems[len(elems)-1].Str == More
	if open {
		elems = elems[:len(elems)-1]
	}
	switch {
	case open && len(got.Elem) < len(elems):
		m.out = append(m.out, Mismatch{Path: path, Want: fmt.Sprintf("at least %d elements", len(elems)), Got: fmt.Sprintf("%d: %s", len(got.Elem), show(got))})
	case !open && len(got.Elem) != len(elems):
		m.out = append(m.out, Mismatch{Path: path, Want: fmt.Sprintf("%d elements", len(elems)), Got: fmt.Sprintf("%d: %s", len(got.Elem), show(got))})
	}
	// The common elements are compared too: a changed line is easier to
	// spot as a field than as a count.
	for i := 0; i < len(elems) && i < len(got.Elem); i++ {
		m.match(path+"["+strconv.Itoa(i)+"]", elems[i], got.Elem[i])
	}
}

func (m *matcher) placeholder(path, p string, got Value) {
	kindIs := func(k Kind) {
		if got.Kind != k {
			m.fail(path, k.String()+" ("+p+")", got)
		}
	}
	switch p {
	case Any:
	case NumberP:
		kindIs(Number)
	case StringP:
		kindIs(String)
	case BoolP:
		kindIs(Bool)
	case ObjectP:
		kindIs(Object)
	case ArrayP:
		kindIs(Array)
	case DateTime:
		if got.Kind != String || !IsDateTime(got.Str) {
			m.fail(path, "a date-time ("+p+")", got)
		}
	case UUID, Physkey:
		if got.Kind != String || !IsUUID(got.Str) {
			m.fail(path, "a UUID ("+p+")", got)
		}
	case Absent:
		m.fail(path, "no such field", got)
	case More:
		m.fail(path, "nothing: $more belongs at the end of an array", got)
	default:
		m.variable(path, p, got)
	}
}

// variable handles "$capture:NAME" and "$NAME".
func (m *matcher) variable(path, p string, got Value) {
	if name, ok := strings.CutPrefix(p, capturePrefix); ok {
		if err := checkVarName(name); err != nil {
			m.fail(path, p+" ("+err.Error()+")", got)
			return
		}
		m.vars[name] = got
		return
	}
	name := p[1:]
	v, ok := m.vars[name]
	if !ok {
		m.fail(path, p+" (never captured: capture it first with \"$capture:"+name+"\", or write $"+p+" for the literal text)", got)
		return
	}
	if !Equal(v, got) {
		m.fail(path, p+" = "+show(v), got)
	}
}

func checkVarName(name string) error {
	if !varName.MatchString(name) {
		return fmt.Errorf("a variable name is letters, digits and _")
	}
	if keywords[name] {
		return fmt.Errorf("$%s is a placeholder word, not a variable", name)
	}
	return nil
}

// Substitute returns a packet to send: "$NAME" becomes the captured value,
// "$new:NAME" a fresh random UUID (bound to NAME for later lines), "$$…"
// the literal "$…". Other placeholders cannot be sent.
func Substitute(packet Value, vars Vars) (Value, error) {
	out := packet.clone()
	err := substitute(&out, vars, "")
	return out, err
}

func substitute(v *Value, vars Vars, path string) error {
	switch v.Kind {
	case Array:
		for i := range v.Elem {
			if err := substitute(&v.Elem[i], vars, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case Object:
		for i, k := range v.Keys {
			if err := substitute(&v.Vals[i], vars, joinKey(path, k)); err != nil {
				return err
			}
		}
	case String:
		if !strings.HasPrefix(v.Str, "$") {
			return nil
		}
		if strings.HasPrefix(v.Str, "$$") {
			*v = Str(v.Str[1:])
			return nil
		}
		if name, ok := strings.CutPrefix(v.Str, newPrefix); ok {
			if err := checkVarName(name); err != nil {
				return fmt.Errorf("%s: %s: %w", orPacket(path), v.Str, err)
			}
			vars[name] = Str(newUUID())
			*v = vars[name]
			return nil
		}
		name := v.Str[1:]
		if keywords[strings.SplitN(name, ":", 2)[0]] {
			return fmt.Errorf("%s: %s is a pattern placeholder; a sent packet can use $NAME, $new:NAME and $$", orPacket(path), v.Str)
		}
		val, ok := vars[name]
		if !ok {
			return fmt.Errorf("%s: %s was never captured (write $%s for the literal text)", orPacket(path), v.Str, v.Str)
		}
		*v = val.clone()
	}
	return nil
}

func orPacket(path string) string {
	if path == "" {
		return "packet"
	}
	return path
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// joinKey is path.key, or path["odd key"] for keys that are not words.
func joinKey(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// show is a value for a one-line message, cut short when long.
func show(v Value) string {
	const max = 160
	s := v.String()
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

// showPattern is a pattern value for a message, with a variable's value.
func showPattern(p Value, vars Vars) string {
	if p.Kind == String && strings.HasPrefix(p.Str, "$") && !strings.HasPrefix(p.Str, "$$") {
		if v, ok := vars[p.Str[1:]]; ok {
			return p.Str + " = " + show(v)
		}
		return p.Str
	}
	return show(p)
}
