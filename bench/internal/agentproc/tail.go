package agentproc

import (
	"strings"
	"sync"
)

// tailMax bounds what tail keeps: an agent that fails to start says why in a few lines.
const tailMax = 4096

// tail keeps the last tailMax bytes written to it, for an error to quote the agent's stderr.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailMax; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// String is what was kept, on one line (an error message, not a log).
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(strings.Fields(string(t.buf)), " ")
}
