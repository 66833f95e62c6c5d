package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// maxShapeDepth is how deeply qo objects may nest; the qo object itself is
// depth 1. Replies are rows, and deeper templates only cost work.
const maxShapeDepth = 4

// Shape is a parsed qo template.
type Shape struct {
	entries []shapeEntry
}

// shapeEntry is one output key: copied from source, or built from nested.
type shapeEntry struct {
	out    string
	source string // row field to copy; unused when nested is set
	nested *Shape
}

// ParseShape reads a qo JSON value. Empty/absent (len 0 or `null`) returns
// nil, nil (no shaping). fields is the list of field names a row has; used to
// report unknown sources. A JSON string is read as the list form, since
// packets may send qo as "pid,description".
func ParseShape(qo json.RawMessage, fields []string) (*Shape, error) {
	qo = bytes.TrimSpace(qo)
	if len(qo) == 0 || string(qo) == "null" {
		return nil, nil
	}
	if !json.Valid(qo) {
		return nil, Errorf(CodeBadArgument, "qo: not valid JSON")
	}
	switch qo[0] {
	case '{':
		return parseShapeObject(qo, "qo", 1, newShapeFields(fields))
	case '"':
		var list string
		if err := json.Unmarshal(qo, &list); err != nil {
			return nil, Errorf(CodeBadArgument, "qo: not valid JSON")
		}
		return ParseShapeList(list, fields)
	}
	return nil, Errorf(CodeBadArgument, "qo: want an object or a comma-separated string, got %s", shapeJSONType(qo))
}

// ParseShapeList reads the HTTP form "pid,description" (spaces trimmed, empty
// parts ignored). A list with no names returns nil, nil, like an absent qo.
func ParseShapeList(list string, fields []string) (*Shape, error) {
	known := newShapeFields(fields)
	s := &Shape{}
	for part := range strings.SplitSeq(list, ",") {
		name := strings.TrimSpace(part)
		if name == "" {
			continue
		}
		path := "qo[" + quoteClipped(name) + "]"
		if err := s.add(path, shapeEntry{out: name, source: name}, known); err != nil {
			return nil, err
		}
	}
	if len(s.entries) == 0 {
		return nil, nil
	}
	return s, nil
}

// shapeFields is the allow-list of sources, kept with its sorted spelling for
// error messages.
type shapeFields struct {
	set    map[string]bool
	sorted string
}

func newShapeFields(fields []string) shapeFields {
	sf := shapeFields{set: make(map[string]bool, len(fields))}
	for _, f := range fields {
		sf.set[f] = true
	}
	names := slices.Compact(slices.Sorted(slices.Values(fields)))
	sf.sorted = strings.Join(names, ", ")
	return sf
}

// add appends an entry, checking its source against the row's fields once
// here, at parse time, instead of discovering a gap row by row.
func (s *Shape) add(path string, e shapeEntry, known shapeFields) error {
	for _, have := range s.entries {
		if have.out == e.out {
			return Errorf(CodeBadArgument, "%s: the output name appears twice", path)
		}
	}
	if e.nested == nil && !known.set[e.source] {
		if known.sorted == "" {
			return Errorf(CodeBadArgument, "%s: no field %s; this reply has no fields", path, quoteClipped(e.source))
		}
		return Errorf(CodeBadArgument, "%s: no field %s; fields are %s", path, quoteClipped(e.source), known.sorted)
	}
	s.entries = append(s.entries, e)
	return nil
}

// parseShapeObject reads one template object with a token decoder, because a
// map would lose the key order that the reply must keep. raw is valid JSON.
func parseShapeObject(raw json.RawMessage, path string, depth int, known shapeFields) (*Shape, error) {
	if depth > maxShapeDepth {
		return nil, Errorf(CodeBadArgument, "%s: qo nests deeper than %d levels", path, maxShapeDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the opening "{"
		return nil, Errorf(CodeBadArgument, "%s: not valid JSON", path)
	}
	s := &Shape{}
	for dec.More() {
		key, val, err := nextShapeMember(dec)
		if err != nil {
			return nil, Errorf(CodeBadArgument, "%s: not valid JSON", path)
		}
		keyPath := path + "[" + quoteClipped(key) + "]"
		e, keep, err := readShapeValue(keyPath, key, val, depth, known)
		if err != nil {
			return nil, err
		}
		if !keep {
			continue
		}
		if err := s.add(keyPath, e, known); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func nextShapeMember(dec *json.Decoder) (string, json.RawMessage, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", nil, err
	}
	key, _ := tok.(string) // object keys are always strings in valid JSON
	var val json.RawMessage
	err = dec.Decode(&val)
	return key, val, err
}

// readShapeValue reads one template value: true copies, a string renames,
// an object nests, false omits (keep is false).
func readShapeValue(path, key string, val json.RawMessage, depth int, known shapeFields) (e shapeEntry, keep bool, err error) {
	if key == "" {
		return e, false, Errorf(CodeBadArgument, "%s: the output name is empty", path)
	}
	e.out = key
	switch val[0] {
	case 't':
		e.source = key
		return e, true, nil
	case 'f':
		return e, false, nil
	case '"':
		if err := json.Unmarshal(val, &e.source); err != nil {
			return e, false, Errorf(CodeBadArgument, "%s: not valid JSON", path)
		}
		return e, true, nil
	case '{':
		e.nested, err = parseShapeObject(val, path, depth+1, known)
		return e, err == nil, err
	}
	return e, false, Errorf(CodeBadArgument, "%s: want true, false, a field name or an object, got %s", path, shapeJSONType(val))
}

// shapeJSONType names the JSON type of a valid raw value for error messages.
func shapeJSONType(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// Apply builds the shaped row. A nil *Shape returns row unchanged. Output keys
// keep template order when marshalled. A source field the row lacks comes out
// as null, so every shaped row has the same keys.
func (s *Shape) Apply(row map[string]any) any {
	if s == nil {
		return row
	}
	return s.build(row)
}

func (s *Shape) build(row map[string]any) shapedRow {
	out := make(shapedRow, 0, len(s.entries))
	for _, e := range s.entries {
		var v any
		if e.nested != nil {
			v = e.nested.build(row)
		} else {
			v = row[e.source]
		}
		out = append(out, shapedMember{key: e.out, value: v})
	}
	return out
}

// shapedRow is a JSON object whose keys marshal in slice order, which a Go
// map cannot promise.
type shapedRow []shapedMember

type shapedMember struct {
	key   string
	value any
}

// MarshalJSON writes the members in order.
func (r shapedRow) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range r {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		val, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// ShapeFor parses qo for replies like v (a struct, or a pointer to one,
// marshalled as JSON): the fields it may name are v's JSON names, those
// omitted when empty included, so that whether a sale has a ticket yet
// does not decide whether naming "ticket" is an error. A nil or empty qo
// is nil, nil.
func ShapeFor(qo json.RawMessage, v any) (*Shape, error) {
	if len(bytes.TrimSpace(qo)) == 0 {
		return nil, nil
	}
	return ParseShape(qo, jsonFields(reflect.TypeOf(v)))
}

// ApplyTo is v with its top-level fields picked and renamed by s; v itself
// for a nil s.
func (s *Shape) ApplyTo(v any) (any, error) {
	if s == nil {
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("shape a reply: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // ids and money as written, not through float64
	var row map[string]any
	if err := dec.Decode(&row); err != nil {
		return nil, fmt.Errorf("shape a reply: %w", err)
	}
	return s.Apply(row), nil
}

// ShapeValue is v shaped by qo (ShapeFor, then ApplyTo).
func ShapeValue(qo json.RawMessage, v any) (any, error) {
	s, err := ShapeFor(qo, v)
	if err != nil {
		return nil, err
	}
	return s.ApplyTo(v)
}

// jsonFields lists the JSON names of a struct type's fields (through a
// pointer, and into embedded structs), as encoding/json names them.
func jsonFields(t reflect.Type) []string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-":
			continue
		case f.Anonymous && name == "":
			// An embedded struct's fields are promoted, whether or not its
			// type is exported.
			names = append(names, jsonFields(f.Type)...)
			continue
		case !f.IsExported():
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}
