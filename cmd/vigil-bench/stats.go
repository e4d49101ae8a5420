package main

import (
	"math"
	"sort"
	"time"
)

// Spread is a sample summarised benchstat-style: the median with the
// smallest and largest value, over N samples.
type Spread struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	All    []float64 `json:"all"`
}

func spread(xs []float64) Spread {
	s := Spread{N: len(xs), All: append([]float64(nil), xs...)}
	if len(xs) == 0 {
		return s
	}
	ys := append([]float64(nil), xs...)
	sort.Float64s(ys)
	s.Min, s.Max = ys[0], ys[len(ys)-1]
	m := len(ys) / 2
	if len(ys)%2 == 1 {
		s.Median = ys[m]
	} else {
		s.Median = (ys[m-1] + ys[m]) / 2
	}
	return s
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
