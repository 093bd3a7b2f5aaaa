package drill

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }
