package supervisor_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/wsactor/wsactor/supervisor"
)

func TestNewValidation(t *testing.T) {
	child := func(context.Context) error { return nil }
	tests := []struct {
		name  string
		child supervisor.Child
		opts  []supervisor.Option
		ok    bool
	}{
		{"defaults", child, nil, true},
		{"nil child", nil, nil, false},
		{"nil option is ignored", child, []supervisor.Option{nil}, true},
		{"each restart type", child, []supervisor.Option{supervisor.WithRestart(supervisor.Temporary)}, true},
		{"restart type out of range", child, []supervisor.Option{supervisor.WithRestart(3)}, false},
		{"negative restart type", child, []supervisor.Option{supervisor.WithRestart(-1)}, false},
		{"intensity 0 restarts", child, []supervisor.Option{supervisor.WithIntensity(0, time.Second)}, true},
		{"intensity at the cap", child, []supervisor.Option{supervisor.WithIntensity(1<<16, time.Second)}, true},
		{"intensity above the cap", child, []supervisor.Option{supervisor.WithIntensity(1<<16+1, time.Second)}, false},
		{"negative intensity max", child, []supervisor.Option{supervisor.WithIntensity(-1, time.Second)}, false},
		{"zero window", child, []supervisor.Option{supervisor.WithIntensity(5, 0)}, false},
		{"negative window", child, []supervisor.Option{supervisor.WithIntensity(5, -time.Second)}, false},
		{"later option wins", child, []supervisor.Option{supervisor.WithIntensity(-1, 0), supervisor.WithIntensity(1, time.Second)}, true},
		{"reset after 0 disables", child, []supervisor.Option{supervisor.WithResetAfter(0)}, true},
		{"negative reset after", child, []supervisor.Option{supervisor.WithResetAfter(-1)}, false},
		{"nil OnRestart", child, []supervisor.Option{supervisor.WithOnRestart(nil)}, true},
		{"nil rand", child, []supervisor.Option{supervisor.WithRand(nil)}, true},
		{"zero backoff", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{})}, true},
		{"backoff min above max", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Min: time.Minute, Max: time.Second})}, true},
		{"backoff no jitter", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Jitter: -1})}, true},
		{"backoff full jitter, factor 1", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Jitter: 1, Factor: 1})}, true},
		{"backoff negative min", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Min: -1})}, false},
		{"backoff negative max", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Max: -1})}, false},
		{"backoff factor below 1", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Factor: 0.5})}, false},
		{"backoff negative factor", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Factor: -2})}, false},
		{"backoff NaN factor", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Factor: math.NaN()})}, false},
		{"backoff infinite factor", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Factor: math.Inf(1)})}, false},
		{"backoff jitter above 1", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Jitter: 1.5})}, false},
		{"backoff NaN jitter", child, []supervisor.Option{supervisor.WithBackoff(supervisor.Backoff{Jitter: math.NaN()})}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := supervisor.New(tt.child, tt.opts...)
			if tt.ok && (err != nil || s == nil) {
				t.Fatalf("New = %v, %v; want a Supervisor", s, err)
			}
			if !tt.ok && (err == nil || s != nil) {
				t.Fatalf("New = %v, %v; want an error", s, err)
			}
		})
	}
}
