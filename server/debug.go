package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

func (s *Server) registerDebug() {
	s.router.Handle(&protocol.Endpoint{Name: "fd1.debug.ping", Access: protocol.Access{AnyKey: true}, Handler: s.ping})
}

// ping answers with the lane's clock: time in the store's zone, timeutc in
// UTC (SPEC §9: a date-time is local store time unless its name ends in
// utc); rd:{"time":true} adds timings (SPEC §3.6), as for every endpoint.
func (s *Server) ping(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	now := time.Now()
	if s.cfg.Now != nil {
		now = s.cfg.Now()
	}
	loc, err := s.laneZone(ctx)
	if err != nil {
		return nil, err
	}
	return &protocol.Result{Data: map[string]any{
		"pong":      1,
		"time":      lanedb.FormatDateTime(now.In(loc)),
		"timeutc":   lanedb.FormatDateTime(now.UTC()),
		"uptime":    int64(now.Sub(s.started).Seconds()),
		"schemaver": lanedb.SchemaVersion(),
	}}, nil
}

// laneZone is the store's time zone from the lane row, read once; UTC
// while the DB holds no lane (an empty fixture), as the sales core does.
func (s *Server) laneZone(ctx context.Context) (*time.Location, error) {
	if loc := s.zone.Load(); loc != nil {
		return loc, nil
	}
	lane, err := s.db.LaneInfo(ctx)
	if errors.Is(err, lanedb.ErrNoLane) {
		return time.UTC, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lane time zone: %w", err)
	}
	loc, err := time.LoadLocation(lane.Timezone)
	if err != nil {
		return nil, fmt.Errorf("lane time zone %q: %w", lane.Timezone, err)
	}
	s.zone.Store(loc)
	return loc, nil
}
