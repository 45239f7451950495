package kommo

import (
	"context"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sleep"
)

// pacer keeps one account's requests under a rate as Kommo counts it: at
// its end, where arrival times carry network and scheduler jitter.
//
// A token bucket (golang.org/x/time/rate) schedules sends in advance; when
// the process stalls, the sends whose time has passed all go at once and
// the server sees a burst. The pacer instead has burst slots, each used by
// one request at a time, and a slot is reused only slots/rate after its
// previous request ended (answer read or attempt abandoned). A request
// that ended had reached the server if it reached it at all, so the server
// sees each slot's requests at least slots/rate apart, whatever the jitter:
// a one-second window holds at most slots·⌈rate/slots⌉ requests, which is
// ⌈rate⌉ with the default single slot.
// The cost is throughput when answers take longer than slots/rate.
type pacer struct {
	slots   chan *slot
	spacing time.Duration // per slot: slots / rate
}

type slot struct{ lastEnd time.Time }

func newPacer(rps float64, slots int) *pacer {
	if rps <= 0 {
		return nil
	}
	slots = max(slots, 1)
	p := &pacer{slots: make(chan *slot, slots), spacing: time.Duration(float64(slots) / rps * float64(time.Second))}
	for range slots {
		p.slots <- &slot{}
	}
	return p
}

// acquire waits for a slot and its spacing; the caller must call release
// when the request has ended. A nil pacer admits everything at once.
func (p *pacer) acquire(ctx context.Context) (release func(), err error) {
	if p == nil {
		return func() {}, nil
	}
	var s *slot
	select {
	case s = <-p.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := sleep.For(ctx, time.Until(s.lastEnd.Add(p.spacing))); err != nil {
		p.slots <- s
		return nil, err
	}
	return func() {
		s.lastEnd = time.Now()
		p.slots <- s
	}, nil
}
