package sandboxtest_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// maxHang is how long the emulators hold a hung call; a test whose cleanup
// waited for it would take that long.
const maxHang = 30 * time.Second

// TestKommoReleasesAHungCallWhenTheTestEnds: a request the Kommo emulator
// holds hung when the test ends does not hold up the test's cleanup.
func TestKommoReleasesAHungCallWhenTheTestEnds(t *testing.T) {
	endsPromptly(t, func(t *testing.T) {
		emu, srv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1, MaxHang: maxHang})
		if _, err := emu.AddAccount("acme"); err != nil {
			t.Fatal(err)
		}
		token, err := emu.IssueLongLivedToken("acme", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		emu.HangNext(1)
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/_acct/acme/api/v4/account", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		go send(req)
		waitUntil(t, func() bool { return emu.Faults().PendingHangs == 0 })
	})
}

// TestUnisenderReleasesAHungCallWhenTheTestEnds: the same for the Unisender
// emulator.
func TestUnisenderReleasesAHungCallWhenTheTestEnds(t *testing.T) {
	endsPromptly(t, func(t *testing.T) {
		emu, srv := sandboxtest.Unisender(t, unisenderemu.Options{MaxHang: maxHang})
		emu.AddAPIKey("key")
		emu.HangNext(1)
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/en/api/getLists?"+url.Values{"format": {"json"}, "api_key": {"key"}}.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		go send(req)
		waitUntil(t, func() bool { return emu.Faults().PendingHangs == 0 })
	})
}

// TestClockStandsStillUntilAdvanced: the clock reads its start until the
// test moves it, forwards or back.
func TestClockStandsStillUntilAdvanced(t *testing.T) {
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := sandboxtest.NewClock(start)
	time.Sleep(time.Millisecond)
	if got := clock.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	clock.Advance(90 * time.Second)
	clock.Advance(-30 * time.Second)
	if got, want := clock.Now(), start.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("Now = %v after advancing, want %v", got, want)
	}
}

// endsPromptly runs test as a subtest and fails if it, with its cleanup,
// took anywhere near maxHang.
func endsPromptly(t *testing.T, test func(t *testing.T)) {
	began := time.Now()
	t.Run("hung call", test)
	if took := time.Since(began); took > maxHang/3 {
		t.Fatalf("the test took %v to end: its cleanup waited for the hung call", took.Round(time.Second))
	}
}

// send sends req and drops the answer: a hung call is answered only when
// the emulator lets it go.
func send(req *http.Request) {
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_ = resp.Body.Close()
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call did not reach the emulator's hang")
		}
	}
}
