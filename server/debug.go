package server

import (
	"context"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

func (s *Server) registerDebug() {
	s.router.Handle(&protocol.Endpoint{Name: "fd1.debug.ping", Access: protocol.Access{AnyKey: true}, Handler: s.ping})
}

// ping answers with the lane's clock; rd:{"time":true} adds timings (SPEC
// §3.6), as for every endpoint.
func (s *Server) ping(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	now := time.Now()
	if s.cfg.Now != nil {
		now = s.cfg.Now()
	}
	return &protocol.Result{Data: map[string]any{
		"pong":      1,
		"time":      lanedb.FormatDateTime(now),
		"timeutc":   lanedb.FormatDateTime(now.UTC()),
		"uptime":    int64(now.Sub(s.started).Seconds()),
		"schemaver": lanedb.SchemaVersion(),
	}}, nil
}
