package client

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestBackoffIsFullJitterBelowADoublingCeiling(t *testing.T) {
	min, max := 500*time.Millisecond, 20*time.Second
	for n, ceiling := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 20 * time.Second, 20 * time.Second} {
		var top time.Duration
		for range 2000 {
			d := backoff(n, min, max)
			if d < 0 || d >= ceiling {
				t.Fatalf("attempt %d: delay %s outside [0, %s)", n, d, ceiling)
			}
			top = maxDur(top, d)
		}
		// Full jitter spreads over the whole range, not just its top.
		if top < ceiling*9/10 {
			t.Errorf("attempt %d: largest of 2000 delays %s, want near %s", n, top, ceiling)
		}
	}
	if d := backoff(1000, min, max); d >= max {
		t.Errorf("attempt 1000: %s", d)
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func TestRefreshHappensInTheLastPartOfATokensLife(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, life := range []time.Duration{time.Hour, 24 * time.Hour, time.Minute} {
		for range 500 {
			d := refreshDelay(now, now.Add(life))
			lead := life - d
			if lead < minRefreshLead || lead > time.Duration(float64(life)*refreshWindow)+time.Second && lead > minRefreshLead {
				t.Fatalf("life %s: refresh %s before expiry", life, lead)
			}
		}
	}
	// About to expire: soon, but never in a loop.
	if d := refreshDelay(now, now.Add(3*time.Second)); d != minRefreshGap {
		t.Errorf("a connection closing in 3s: wait %s, want %s", d, minRefreshGap)
	}
	if d := refreshDelay(now, now.Add(time.Second)); d != time.Second/2 {
		t.Errorf("a connection closing in 1s: wait %s, want half of it", d)
	}
	if d := refreshDelay(now, now.Add(-time.Second)); d != 0 {
		t.Errorf("past its close time: wait %s, want 0", d)
	}
}

func TestTokenExpiryReadsTheExpClaim(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(`{"sub":"42","exp":1700000000}`)) + ".sig"
	if exp, ok := tokenExpiry(tok); !ok || exp.Unix() != 1700000000 {
		t.Errorf("exp %v %v", exp, ok)
	}
	for _, bad := range []string{"", "a.b", "x.!!.y", enc([]byte(`{}`)) + "." + enc([]byte(`{"sub":"1"}`)) + ".s"} {
		if _, ok := tokenExpiry(bad); ok {
			t.Errorf("%q: an expiry", bad)
		}
	}
}
