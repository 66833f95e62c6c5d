package lanedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// The WAL is copied back into the database file (a checkpoint) by a
// connection of its own, in the background, rather than by the writer.
// SQLite's default makes the connection whose COMMIT takes the WAL past a
// thousand pages run the checkpoint inside that COMMIT: under load that
// is the group-commit writer, which then holds every waiting tablet for
// the checkpoint's copy and its fsync of the database file. The writer
// connection has wal_autocheckpoint off; the checkpointer runs a PASSIVE
// checkpoint (it never blocks the writer or a reader) every
// checkpointEvery. Other processes on the lane DB keep SQLite's default.

// checkpointEvery is how often the checkpointer copies the WAL back: often
// enough that the WAL stays a few megabytes under full load.
const checkpointEvery = 250 * time.Millisecond

// checkpointer runs PASSIVE checkpoints until stopped.
type checkpointer struct {
	conn *sql.DB
	stop chan struct{}
	done chan struct{}
}

func startCheckpointer(ctx context.Context, abs string, o Options) (*checkpointer, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	conn, err := sql.Open("sqlite", fileURI(abs)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open lane db checkpointer %s: %w", abs, err)
	}
	conn.SetMaxOpenConns(1)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open lane db checkpointer %s: %w", abs, err)
	}
	c := &checkpointer{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		// A failed checkpoint is retried at the next tick; the WAL only
		// grows meanwhile, and the last connection to close checkpoints.
		_, _ = c.conn.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// Close stops the checkpointer and closes its connection.
func (c *checkpointer) Close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}
