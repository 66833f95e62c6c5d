package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Log-linear buckets in the manner of HdrHistogram: values below 2^subBits
// nanoseconds have a bucket each; every power of two above is split into
// 2^subBits equal buckets. A recorded value is thus off by at most 1/64
// (1.6 %) of itself at any scale, in fixed memory (octaves × 64 counters,
// about 21 KB) however many requests a run makes.
const (
	subBits     = 6
	subBuckets  = 1 << subBits
	octaves     = 41 // up to 2^46 ns, about 19 hours: nothing real is cut off
	bucketCount = octaves * subBuckets
)

// histogram records request latencies. It is safe for concurrent use: all
// tablets of a phase share one per request kind, so memory does not grow
// with the number of tablets, and an atomic add costs far less than the
// request it measures.
type histogram struct {
	counts [bucketCount]atomic.Int64
	total  atomic.Int64
	max    atomic.Int64
}

// record adds one latency.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
}

// bucketOf is the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	i := (shift+1)*subBuckets + int(v>>shift) - subBuckets
	return min(i, bucketCount-1)
}

// bucketMid is a representative value of bucket i: its midpoint.
func bucketMid(i int) int64 {
	group, m := i/subBuckets, int64(i%subBuckets)
	if group == 0 {
		return m
	}
	lo := (subBuckets + m) << (group - 1)
	width := int64(1) << (group - 1)
	return lo + width/2
}

// count is how many latencies were recorded.
func (h *histogram) count() int64 { return h.total.Load() }

// quantile is the latency that a fraction q (0 < q ≤ 1) of requests did
// not exceed, to within the bucket width. 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return h.atRank(quantileRank(q, n))
}

// quantileRank is the rank (1…n) of quantile q among n values.
func quantileRank(q float64, n int64) int64 {
	rank := int64(q*float64(n) + 0.999999) // ceil, without float noise turning 99.0 into 100
	return min(max(rank, 1), n)
}

// atRank is the rank-th smallest latency recorded (1-based), to within
// the bucket width.
func (h *histogram) atRank(rank int64) time.Duration {
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), h.maxValue())
		}
	}
	return h.maxValue()
}

// maxValue is the largest latency recorded.
func (h *histogram) maxValue() time.Duration { return time.Duration(h.max.Load()) }
