package main

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Histogram is a log-linear latency histogram in the spirit of HdrHistogram.
//
// Values are durations in nanoseconds. Values below 2*subBuckets are kept
// exactly; above that every power-of-two range is split into subBuckets equal
// buckets, so a reported percentile is at most 1/subBuckets (< 0.8 %) above
// the true sample. Memory is fixed (numBuckets counters) however many samples
// are recorded, so a long run cannot grow it. Min, max and sum are exact.
//
// A Histogram is not safe for concurrent use: give each worker its own and
// Merge them at the end.
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	sum    uint64 // nanoseconds; overflows only after ~584 years of samples
	min    uint64
	max    uint64
}

const (
	subBits    = 7
	subBuckets = 1 << subBits // 128
	// The largest index is reached by v = 1<<64-1: shift = 64-subBits-1.
	numBuckets = (64-subBits-1)*subBuckets + 2*subBuckets
)

// bucketIndex maps a value to its bucket. It is monotonic in v.
func bucketIndex(v uint64) int {
	shift := bits.Len64(v) - subBits - 1
	if shift <= 0 {
		return int(v) // exact below 2*subBuckets
	}
	// v>>shift is in [subBuckets, 2*subBuckets).
	return shift*subBuckets + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest value that map to idx.
func bucketRange(idx int) (lo, hi uint64) {
	if idx < 2*subBuckets {
		return uint64(idx), uint64(idx)
	}
	shift := idx/subBuckets - 1
	mant := uint64(idx - shift*subBuckets)
	lo = mant << uint(shift)
	return lo, lo + (1 << uint(shift)) - 1
}

// Record adds one sample. Negative durations are recorded as 0.
func (h *Histogram) Record(d time.Duration) {
	var v uint64
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketIndex(v)]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += v
}

// Merge adds all samples of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Count is the number of recorded samples.
func (h *Histogram) Count() uint64 { return h.count }

// Min is the smallest sample (exact), 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest sample (exact), 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact arithmetic mean, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Percentile returns the value at or below which p percent of the samples
// fall (nearest-rank definition), p in [0,100]. The result is the upper edge
// of the bucket holding that rank, clamped to [Min, Max], so it is never
// below the exact nearest-rank value and at most 1/128 above it. Returns 0
// when the histogram is empty.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if p <= 0 || math.IsNaN(p) {
		return time.Duration(h.min)
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		if cum >= rank {
			_, hi := bucketRange(i)
			if hi > h.max {
				hi = h.max
			}
			if hi < h.min {
				hi = h.min
			}
			return time.Duration(hi)
		}
	}
	return time.Duration(h.max)
}

// shardedHistogram lets many workers record latencies without one
// Histogram each (~58 KiB apiece, too much for 100k connections) and
// without one contended lock: worker k records into shard k % len(shards).
type shardedHistogram struct {
	shards []histShard
}

type histShard struct {
	mu sync.Mutex
	h  Histogram
	_  [64]byte // keep neighbouring shards' locks off one cache line
}

func newShardedHistogram(n int) *shardedHistogram {
	return &shardedHistogram{shards: make([]histShard, max(n, 1))}
}

// Record adds d to the shard of worker key (key >= 0). Safe for concurrent use.
func (s *shardedHistogram) Record(key int, d time.Duration) {
	sh := &s.shards[key%len(s.shards)]
	sh.mu.Lock()
	sh.h.Record(d)
	sh.mu.Unlock()
}

// Merged returns all shards combined. Call it after the workers stopped.
func (s *shardedHistogram) Merged() *Histogram {
	var h Histogram
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h.Merge(&sh.h)
		sh.mu.Unlock()
	}
	return &h
}

// errorKind classifies a failed operation.
type errorKind int

const (
	errWrong   errorKind = iota // a reply arrived but was not the expected one
	errTimeout                  // a write or the reply missed its deadline
	errIO                       // any other read/write/protocol error, incl. a close by the peer
	errDial                     // (re)opening a connection failed
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{"wrong", "timeout", "io", "dial"}

func (k errorKind) String() string { return errorKindNames[k] }

// maxErrorSamples bounds how many error messages a run keeps for the report.
const maxErrorSamples = 5

// tally is what one worker counts (latencies go to a shardedHistogram). It
// is owned by one goroutine; merge the tallies after the workers stopped.
type tally struct {
	ok           uint64 // correct replies to messages sent in the measured window
	okAll        uint64 // correct replies in the whole run, warmup included
	errs         [numErrorKinds]uint64
	warmupErrors uint64 // errors of any kind before the measured window
	reconnects   uint64
	samples      []string
}

// fail counts an error of kind k; measured says whether it happened in the
// measured window. The first few messages are kept for the report.
func (t *tally) fail(k errorKind, measured bool, err error) {
	if measured {
		t.errs[k]++
	} else {
		t.warmupErrors++
	}
	if len(t.samples) < maxErrorSamples && err != nil {
		phase := ""
		if !measured {
			phase = " (warmup)"
		}
		t.samples = append(t.samples, k.String()+phase+": "+err.Error())
	}
}

func (t *tally) merge(o *tally) {
	t.ok += o.ok
	t.okAll += o.okAll
	for i := range t.errs {
		t.errs[i] += o.errs[i]
	}
	t.warmupErrors += o.warmupErrors
	t.reconnects += o.reconnects
	for _, s := range o.samples {
		if len(t.samples) >= maxErrorSamples {
			break
		}
		t.samples = append(t.samples, s)
	}
}

// totalErrors is the number of errors in the measured window.
func (t *tally) totalErrors() uint64 {
	var n uint64
	for _, c := range t.errs {
		n += c
	}
	return n
}
