package lane

import (
	"testing"

	"go.uber.org/goleak"
)

// A closed lane leaves no goroutine behind: hub, sweeper, writer.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
