package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketIndexMonotonicAndRangesConsistent(t *testing.T) {
	prev := -1
	check := func(v uint64) {
		idx := bucketIndex(v)
		if idx < prev {
			t.Fatalf("bucketIndex(%d)=%d < previous %d: not monotonic", v, idx, prev)
		}
		prev = idx
		if idx < 0 || idx >= numBuckets {
			t.Fatalf("bucketIndex(%d)=%d out of [0,%d)", v, idx, numBuckets)
		}
		lo, hi := bucketRange(idx)
		if v < lo || v > hi {
			t.Fatalf("value %d maps to bucket %d = [%d,%d]", v, idx, lo, hi)
		}
		if v >= 2*subBuckets && float64(hi-lo+1)/float64(lo) > 1.0/subBuckets+1e-12 {
			t.Fatalf("bucket %d = [%d,%d] wider than 1/%d of its value", idx, lo, hi, subBuckets)
		}
	}
	for v := uint64(0); v < 1<<16; v++ {
		check(v)
	}
	for v := uint64(1 << 16); v < 1<<63; v += v/8 + 1 {
		check(v)
	}
	check(math.MaxUint64)
}

// exactPercentile is the nearest-rank percentile of sorted samples.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestPercentilesMatchExactWithinResolution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform-us":  func() time.Duration { return time.Duration(rng.IntN(1000)) * time.Microsecond },
		"exponential": func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(300*time.Microsecond)) },
		"bimodal": func() time.Duration {
			if rng.IntN(100) == 0 {
				return 50*time.Millisecond + time.Duration(rng.IntN(1e6))
			}
			return 200*time.Microsecond + time.Duration(rng.IntN(1e5))
		},
		"tiny-exact": func() time.Duration { return time.Duration(rng.IntN(200)) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, 100_000)
			for i := range samples {
				samples[i] = gen()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, p := range []float64{0.1, 1, 25, 50, 90, 99, 99.9, 99.99} {
				exact := exactPercentile(samples, p)
				got := h.Percentile(p)
				if got < exact || float64(got-exact) > float64(exact)/subBuckets {
					t.Errorf("p%v = %v, exact %v: outside [exact, exact*(1+1/%d)]", p, got, exact, subBuckets)
				}
			}
			if h.Min() != samples[0] || h.Max() != samples[len(samples)-1] {
				t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
			}
			if h.Percentile(100) != h.Max() || h.Percentile(0) != h.Min() {
				t.Errorf("p0/p100 should be min/max")
			}
			var sum time.Duration
			for _, s := range samples {
				sum += s
			}
			if want := sum / time.Duration(len(samples)); h.Mean() != want {
				t.Errorf("mean = %v, want %v", h.Mean(), want)
			}
			if h.Count() != uint64(len(samples)) {
				t.Errorf("count = %d, want %d", h.Count(), len(samples))
			}
		})
	}
}

func TestHistogramSmallCases(t *testing.T) {
	var h Histogram
	if h.Percentile(50) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5) // clamped
	if h.Min() != 0 || h.Count() != 1 {
		t.Fatalf("negative sample: min %v count %d", h.Min(), h.Count())
	}
	var one Histogram
	one.Record(1234567 * time.Nanosecond)
	for _, p := range []float64{1, 50, 99, 100} {
		if got := one.Percentile(p); got != 1234567 {
			t.Errorf("single sample p%v = %v, want exact 1234567ns (clamped to max)", p, got)
		}
	}
	// 1..100 ms: p50 must be 50 ms (within resolution), p99 99 ms.
	var hh Histogram
	for i := 1; i <= 100; i++ {
		hh.Record(time.Duration(i) * time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 1: time.Millisecond} {
		got := hh.Percentile(p)
		if got < want || got > want+want/subBuckets {
			t.Errorf("p%v = %v, want ~%v", p, got, want)
		}
	}
}

func TestHistogramMergeEqualsCombined(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&Histogram{}) // merging an empty one changes nothing
	m.Merge(&a)
	m.Merge(&b)
	if m != all {
		t.Fatal("merge of parts differs from the histogram of all samples")
	}
}

func TestShardedHistogramConcurrentRecordsAllSamples(t *testing.T) {
	sh := newShardedHistogram(3)
	var want Histogram
	for k := range 8 {
		for i := range 500 {
			want.Record(time.Duration(k*1000+i) * time.Microsecond)
		}
	}
	var wg sync.WaitGroup
	for k := range 8 { // more workers than shards
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				sh.Record(k, time.Duration(k*1000+i)*time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if got := sh.Merged(); *got != want {
		t.Fatalf("sharded: count %d p50 %v max %v; want count %d p50 %v max %v",
			got.Count(), got.Percentile(50), got.Max(), want.Count(), want.Percentile(50), want.Max())
	}
}

func TestTallyCountsAndSamples(t *testing.T) {
	var a, b tally
	for range 10 {
		a.fail(errWrong, true, errTest)
	}
	a.fail(errTimeout, false, errTest)
	b.fail(errDial, true, errTest)
	b.ok = 7
	a.merge(&b)
	if a.totalErrors() != 11 || a.errs[errWrong] != 10 || a.errs[errDial] != 1 || a.warmupErrors != 1 || a.ok != 7 {
		t.Fatalf("tally = %+v", a.errs)
	}
	if len(a.samples) != maxErrorSamples {
		t.Fatalf("kept %d samples, want %d", len(a.samples), maxErrorSamples)
	}
}

type testErr string

func (e testErr) Error() string { return string(e) }

const errTest = testErr("boom")
