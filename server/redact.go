package server

import (
	"context"
	"log/slog"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// redactKeys is a log handler that hides the secret of anything shaped
// like an API key in a record's message and string values (and errors),
// whatever line carries it: the access line's path, where a key pasted
// into a URL by mistake would otherwise be written in clear, and any
// other line that quotes what a client sent.
type redactKeys struct{ next slog.Handler }

func (h redactKeys) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h redactKeys) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, lanedb.RedactKeys(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactKeys) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = redactAttr(a)
	}
	return redactKeys{h.next.WithAttrs(clean)}
}

func (h redactKeys) WithGroup(name string) slog.Handler { return redactKeys{h.next.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(lanedb.RedactKeys(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]slog.Attr, len(g))
		for i, ga := range g {
			clean[i] = redactAttr(ga)
		}
		a.Value = slog.GroupValue(clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			if msg := err.Error(); lanedb.RedactKeys(msg) != msg {
				a.Value = slog.StringValue(lanedb.RedactKeys(msg))
			}
		}
	}
	return a
}
