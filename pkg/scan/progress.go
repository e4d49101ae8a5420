package scan

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line progress bar, redrawn in place with '\r' at
// most every progressEvery. The caller decides whether its writer is a
// terminal.
type progress struct {
	w     io.Writer
	total int
	done  int
	start time.Time
	last  time.Time
	width int
}

const progressEvery = 100 * time.Millisecond

func newProgress(w io.Writer, total int) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, total: total, start: time.Now(), width: 30}
	p.draw()
	return p
}

// add records n more files done.
func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.done += n
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.draw()
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}

func (p *progress) draw() {
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	fill := int(frac * float64(p.width))
	bar := strings.Repeat("=", fill)
	if fill < p.width {
		bar += ">" + strings.Repeat(" ", p.width-fill-1)
	}
	el := time.Since(p.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	eta := ""
	if rate > 0 && p.done < p.total {
		eta = fmt.Sprintf(" ETA %s", time.Duration(float64(p.total-p.done)/rate*float64(time.Second)).Round(time.Second))
	}
	fmt.Fprintf(p.w, "\rscanning %3.0f%% [%s] %d/%d files %.0f files/s%s\x1b[K", frac*100, bar, p.done, p.total, rate, eta)
}
