package bench

import (
	"encoding/json"
	"fmt"
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

func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
}

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

func (h *histogram) maxValue() time.Duration { return time.Duration(h.max.Load()) }

// histogramJSON is a histogram on the wire (a child's figures): its
// non-empty buckets only.
type histogramJSON struct {
	Buckets [][2]int64 `json:"buckets"` // [bucket index, count]
	Max     int64      `json:"max"`     // nanoseconds
}

func (h *histogram) MarshalJSON() ([]byte, error) {
	j := histogramJSON{Max: h.max.Load()}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			j.Buckets = append(j.Buckets, [2]int64{int64(i), n})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON adds the buckets to h's.
func (h *histogram) UnmarshalJSON(b []byte) error {
	var j histogramJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	for _, b := range j.Buckets {
		if b[0] < 0 || b[0] >= bucketCount || b[1] < 0 {
			return fmt.Errorf("bucket %d count %d out of range", b[0], b[1])
		}
		h.counts[b[0]].Add(b[1])
		h.total.Add(b[1])
	}
	h.max.Store(max(j.Max, 0))
	return nil
}

// signedHistogram records durations that may be negative: the negative
// ones by their size in one histogram, the rest in another. Its memory is
// fixed, as a histogram's.
type signedHistogram struct {
	neg, pos histogram
}

func (h *signedHistogram) record(d time.Duration) {
	if d < 0 {
		h.neg.record(-d)
		return
	}
	h.pos.record(d)
}

func (h *signedHistogram) count() int64 { return h.neg.count() + h.pos.count() }

// negShare is the fraction of values below zero.
func (h *signedHistogram) negShare() float64 {
	if n := h.count(); n > 0 {
		return float64(h.neg.count()) / float64(n)
	}
	return 0
}

// quantile is the value that a fraction q of values did not exceed. The
// r-th smallest value overall is, among the negatives, the one whose size
// is the (negatives − r + 1)-th smallest.
func (h *signedHistogram) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank, negN := quantileRank(q, n), h.neg.count()
	if rank <= negN {
		return -h.neg.atRank(negN - rank + 1)
	}
	return h.pos.atRank(rank - negN)
}

// maxValue is the largest value; negative when every value is.
func (h *signedHistogram) maxValue() time.Duration {
	if h.pos.count() > 0 {
		return h.pos.maxValue()
	}
	return -h.neg.atRank(1)
}

type quantiler interface {
	quantile(q float64) time.Duration
	maxValue() time.Duration
	count() int64
}

// quantiles is "p50 0.52ms  p99 1.20ms  p999 2.31ms  max 3.10ms  n 2000",
// each latency written by f, the count padded to nWidth.
func quantiles(h quantiler, f func(time.Duration) string, nWidth int) string {
	return fmt.Sprintf("p50 %-8s p99 %-8s p999 %-8s max %-8s n %-*d", f(h.quantile(0.50)), f(h.quantile(0.99)),
		f(h.quantile(0.999)), f(h.maxValue()), nWidth, h.count())
}

func (p *printer) latency(label string, h quantiler) {
	p.printf("   %-13s %s\n", label, quantiles(h, ms, 0))
}
