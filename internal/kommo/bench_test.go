package kommo_test

import (
	"context"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// BenchmarkListContacts measures a full listing of 10,000 contacts (40
// pages) through the client and the emulator, with no rate limit: the cost
// of decoding and paging, not of waiting.
func BenchmarkListContacts(b *testing.B) {
	const n = 10_000
	e := newEmu(b, kommoemu.Options{})
	if err := e.emu.SeedContacts("acme", n); err != nil {
		b.Fatal(err)
	}
	c := e.client(b)
	for b.Loop() {
		got := 0
		err := c.ListContacts(context.Background(), kommo.ListContactsOptions{}, func(page []kommo.Contact) error {
			got += len(page)
			return nil
		})
		if err != nil || got != n {
			b.Fatalf("listed %d, err %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "contacts/s")
}
