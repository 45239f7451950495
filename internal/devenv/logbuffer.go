package devenv

import (
	"bytes"
	"strings"
	"sync"
)

// LogBuffer is an Options.Output that tests read back when they fail: safe
// for the processes' concurrent writes; String returns the last 200 kB.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 200_000 {
		s = "…" + s[len(s)-200_000:]
	}
	return strings.TrimSpace(s)
}

// All returns every line written so far, for scans that must see the whole
// run (String keeps only the tail).
func (b *LogBuffer) All() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
