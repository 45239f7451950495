package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// TestMaxJobSizeIsBeanstalkds: the producer reads the -z the test
// beanstalkd runs with (hack/testenv: 1 MiB).
func TestMaxJobSizeIsBeanstalkds(t *testing.T) {
	p := NewProducer(testenv.BeanstalkdAddr(t), ProducerOptions{})
	t.Cleanup(func() { p.Close() })
	n, err := p.MaxJobSize(context.Background())
	if err != nil || n != 1<<20 {
		t.Fatalf("max-job-size %d (%v), want %d", n, err, 1<<20)
	}
}

// TestPutWithinSplitsToFit: items whose one job would be too big are put
// as several, each within the bound, all items once and in order; an item
// too big alone is refused before anything of it is put.
func TestPutWithinSplitsToFit(t *testing.T) {
	items := make([]string, 100)
	for i := range items {
		items[i] = fmt.Sprintf("item-%03d", i)
	}
	encode := func(s []string) ([]byte, error) { return []byte(strings.Join(s, ",")), nil }
	var bodies []string
	put := func(b []byte) error { bodies = append(bodies, string(b)); return nil }
	const bound = 100
	if err := PutWithin(items, bound, encode, put); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bodies {
		if len(b) > bound {
			t.Errorf("a job of %d bytes, bound %d", len(b), bound)
		}
		got = append(got, strings.Split(b, ",")...)
	}
	if !slices.Equal(got, items) || len(bodies) < 9 {
		t.Fatalf("%d jobs naming %d items, want every item once in order", len(bodies), len(got))
	}
	bodies = nil
	err := PutWithin([]string{strings.Repeat("x", bound+1)}, bound, encode, put)
	if !errors.Is(err, ErrJobTooBig) || len(bodies) != 0 {
		t.Fatalf("an item too big alone: %v, %d jobs put", err, len(bodies))
	}
}
