package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is the live status line on the terminal: a bar over the run's
// duration (or a counter while dialing) with the latest sample. It is used
// by the run's goroutine only. The zero value (no writer) shows nothing.
type progress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// newProgress shows progress on w when w is a terminal.
func newProgress(w io.Writer, quiet bool) *progress {
	if quiet || w == nil {
		return &progress{}
	}
	f, ok := w.(*os.File)
	if !ok {
		return &progress{}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &progress{}
	}
	return &progress{w: w}
}

func (p *progress) start(max int64, what string) {
	if p.w == nil {
		return
	}
	p.finish()
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(20),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *progress) set(n int64, desc string) {
	if p.bar == nil {
		return
	}
	p.bar.Describe(desc)
	_ = p.bar.Set64(n)
}

func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	_ = p.bar.Finish()
	_ = p.bar.Exit()
	p.bar = nil
}

// status is the text of the status line for a sample.
func status(s Sample) string {
	return fmt.Sprintf("conns %d | %s req/s | p50 %.1fms p99 %.1fms | srv %s req/s | rss %.0fMiB | gor %d | restarts %d | viol %d",
		s.Conns, human(s.ClientRate), s.P50, s.P99, human(s.ServerRate), s.RSSMiB, s.Goroutines, s.Restarts, s.Violations)
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
