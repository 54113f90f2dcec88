package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
)

// progress is the live status line on the terminal: a bar over the run's
// duration (or a counter while dialing) with the latest sample. It is used
// by the run's goroutine only. The zero value (no writer) shows nothing.
type progress struct {
	w     io.Writer
	every time.Duration // least time between redraws (0: 200 ms)
	bar   *progressbar.ProgressBar
	room  int // columns left for the description
}

// Columns of the status line: it must not wrap in an 80-column terminal,
// or every redraw scrolls instead of overwriting the line.
const (
	lineColumns = 80
	barColumns  = 10
)

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

// start shows a bar towards max (or, for max -1, a spinner with a count),
// described by what. A bar shows its count (n/max) only while dialing: the
// soak's count is seconds, and its percentage says as much.
func (p *progress) start(max int64, what string) {
	if p.w == nil {
		return
	}
	p.finish()
	every := p.every
	if every == 0 {
		every = 200 * time.Millisecond
	}
	showCount := max < 0 || what == "dialing"
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(barColumns),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionThrottle(every),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
	}
	if showCount {
		opts = append(opts, progressbar.OptionShowCount())
	}
	p.bar = progressbar.NewOptions64(max, opts...)
	// What the bar draws around the description (progressbar's format):
	// "%4d%% |" bar "| " count " " desc " ", or, without a length,
	// spinner " " count " " desc " "; count is "(n/max)", "(n/-)" or empty.
	count := 0
	if showCount {
		count = len("(/)") + 2*len(fmt.Sprint(max))
		if max < 0 {
			count = len("(/-)") + 10 // seconds: 300 years
		}
	}
	used := len(" 100% |") + barColumns + len("| ") + count + len(" ") + len(" ")
	if max < 0 {
		used = 1 + len(" ") + count + len(" ") + len(" ") // the spinner is one column
	}
	p.room = lineColumns - used
}

func (p *progress) set(n int64, desc string) {
	if p.bar == nil {
		return
	}
	p.bar.Describe(fit(desc, p.room))
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

// fieldSep separates the fields of a status line.
const fieldSep = "  "

// status is the text of the status line for a sample: its fields in order
// of importance, since fit drops them from the end when the line is short
// of room (report.json has every sample in full).
func status(s Sample) string {
	return strings.Join([]string{
		fmt.Sprintf("conns %d", s.Conns),
		human(s.ClientRate) + " req/s",
		"p99 " + millis(s.P99),
		fmt.Sprintf("viol %d", s.Violations),
		fmt.Sprintf("rss %.0fM", s.RSSMiB),
		"srv " + human(s.ServerRate) + "/s",
		fmt.Sprintf("rst %d", s.Restarts),
		fmt.Sprintf("gor %d", s.Goroutines),
		"p50 " + millis(s.P50),
	}, fieldSep)
}

// fit cuts desc to at most room columns, dropping whole fields from the
// end (a single field too long is cut short).
func fit(desc string, room int) string {
	for utf8.RuneCountInString(desc) > room {
		i := strings.LastIndex(desc, fieldSep)
		if i < 0 {
			return string([]rune(desc)[:max(room, 0)])
		}
		desc = desc[:i]
	}
	return desc
}

// millis shows a latency in ms with two or three significant digits.
func millis(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
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
