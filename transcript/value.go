package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
)

// Kind is the JSON type of a Value.
type Kind int

// The JSON kinds.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

// Value is a JSON value that keeps the order of object keys. Order matters
// in FD1: a qo template's key order is the order of the reply's fields, so
// a packet read from a transcript must be sent exactly as it was written.
type Value struct {
	Kind Kind
	Bool bool
	Num  string   // the number as written (Number)
	Str  string   // String
	Elem []Value  // Array
	Keys []string // Object keys, in order
	Vals []Value  // Object values, parallel to Keys
}

// Convenience constructors, mostly for tests.

// Str is a JSON string.
func Str(s string) Value { return Value{Kind: String, Str: s} }

// Num is a JSON number written as s (e.g. "9.9").
func Num(s string) Value { return Value{Kind: Number, Num: s} }

// errEmpty is Parse's answer to input with no value in it.
var errEmpty = errors.New("empty input")

// Parse decodes one JSON value and refuses trailing data.
func Parse(b []byte) (Value, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Value{}, errEmpty
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if errors.Is(err, errEmpty) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// Something began, and the input ended inside it.
		return Value{}, errors.New(`it ends before it is complete (a closing }, ] or " missing?)`)
	}
	if err != nil {
		return Value{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Value{}, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (Value, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Value{}, errEmpty
		}
		return Value{}, err
	}
	switch t := tok.(type) {
	case nil:
		return Value{Kind: Null}, nil
	case bool:
		return Value{Kind: Bool, Bool: t}, nil
	case json.Number:
		return Value{Kind: Number, Num: t.String()}, nil
	case string:
		return Value{Kind: String, Str: t}, nil
	case json.Delim:
		if t == '[' {
			return decodeArray(dec)
		}
		return decodeObject(dec)
	}
	return Value{}, fmt.Errorf("unexpected token %v", tok)
}

func decodeArray(dec *json.Decoder) (Value, error) {
	v := Value{Kind: Array, Elem: []Value{}}
	for dec.More() {
		e, err := decodeValue(dec)
		if err != nil {
			return Value{}, err
		}
		v.Elem = append(v.Elem, e)
	}
	_, err := dec.Token() // ']'
	return v, err
}

func decodeObject(dec *json.Decoder) (Value, error) {
	v := Value{Kind: Object, Keys: []string{}, Vals: []Value{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Value{}, err
		}
		key, _ := tok.(string)
		val, err := decodeValue(dec)
		if err != nil {
			return Value{}, err
		}
		// A repeated key keeps its first position and its last value, as
		// encoding/json does when it decodes into a map.
		if i := v.index(key); i >= 0 {
			v.Vals[i] = val
			continue
		}
		v.Keys = append(v.Keys, key)
		v.Vals = append(v.Vals, val)
	}
	_, err := dec.Token() // '}'
	return v, err
}

// index is the position of key in an object, or -1.
func (v Value) index(key string) int {
	for i, k := range v.Keys {
		if k == key {
			return i
		}
	}
	return -1
}

// Get returns an object's field.
func (v Value) Get(key string) (Value, bool) {
	if v.Kind != Object {
		return Value{}, false
	}
	if i := v.index(key); i >= 0 {
		return v.Vals[i], true
	}
	return Value{}, false
}

// Set replaces an object's field, or appends it.
func (v *Value) Set(key string, val Value) {
	if i := v.index(key); i >= 0 {
		v.Vals[i] = val
		return
	}
	v.Keys = append(v.Keys, key)
	v.Vals = append(v.Vals, val)
}

// String is the compact JSON text.
func (v Value) String() string {
	var b strings.Builder
	v.write(&b, "", "")
	return b.String()
}

// MarshalJSON writes the value in its own key order.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalJSON reads a value keeping key order, so a transcript line
// decoded with encoding/json keeps its packets as written.
func (v *Value) UnmarshalJSON(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// Indent is the JSON text indented for people, every line after the first
// starting with prefix.
func (v Value) Indent(prefix, indent string) string {
	var b strings.Builder
	v.write(&b, prefix, indent)
	return b.String()
}

func (v Value) write(b *strings.Builder, prefix, indent string) {
	nl := func(depth int) {
		if indent != "" {
			b.WriteString("\n" + prefix + strings.Repeat(indent, depth))
		}
	}
	var walk func(v Value, depth int)
	walk = func(v Value, depth int) {
		switch v.Kind {
		case Null:
			b.WriteString("null")
		case Bool:
			b.WriteString(strconv.FormatBool(v.Bool))
		case Number:
			b.WriteString(v.Num)
		case String:
			b.WriteString(quote(v.Str))
		case Array:
			if len(v.Elem) == 0 {
				b.WriteString("[]")
				return
			}
			b.WriteByte('[')
			for i, e := range v.Elem {
				if i > 0 {
					b.WriteByte(',')
				}
				nl(depth + 1)
				walk(e, depth+1)
			}
			nl(depth)
			b.WriteByte(']')
		case Object:
			if len(v.Keys) == 0 {
				b.WriteString("{}")
				return
			}
			b.WriteByte('{')
			for i, k := range v.Keys {
				if i > 0 {
					b.WriteByte(',')
				}
				nl(depth + 1)
				b.WriteString(quote(k))
				b.WriteByte(':')
				if indent != "" {
					b.WriteByte(' ')
				}
				walk(v.Vals[i], depth+1)
			}
			nl(depth)
			b.WriteByte('}')
		}
	}
	walk(v, 0)
}

// quote is a JSON string without HTML escaping (transcripts are for people).
func quote(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

// Equal reports whether two values are the same JSON: object key order does
// not matter, and numbers compare by value (9.9 equals 9.90).
func Equal(a, b Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case Null:
		return true
	case Bool:
		return a.Bool == b.Bool
	case Number:
		return numEqual(a.Num, b.Num)
	case String:
		return a.Str == b.Str
	case Array:
		if len(a.Elem) != len(b.Elem) {
			return false
		}
		for i := range a.Elem {
			if !Equal(a.Elem[i], b.Elem[i]) {
				return false
			}
		}
		return true
	}
	if len(a.Keys) != len(b.Keys) {
		return false
	}
	for i, k := range a.Keys {
		bv, ok := b.Get(k)
		if !ok || !Equal(a.Vals[i], bv) {
			return false
		}
	}
	return true
}

func numEqual(a, b string) bool {
	if a == b {
		return true
	}
	x, okx := new(big.Rat).SetString(a)
	y, oky := new(big.Rat).SetString(b)
	return okx && oky && x.Cmp(y) == 0
}

// clone is a deep copy, so a pattern rewritten for one replay does not
// change the parsed transcript.
func (v Value) clone() Value {
	switch v.Kind {
	case Array:
		c := v
		c.Elem = make([]Value, len(v.Elem))
		for i, e := range v.Elem {
			c.Elem[i] = e.clone()
		}
		return c
	case Object:
		c := v
		c.Keys = append([]string(nil), v.Keys...)
		c.Vals = make([]Value, len(v.Vals))
		for i, e := range v.Vals {
			c.Vals[i] = e.clone()
		}
		return c
	}
	return v
}
