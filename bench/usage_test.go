package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// -h starts with a one-line summary, and every flag is listed exactly once,
// in its group: the child-process flags apart, after the driver's.
func TestUsage(t *testing.T) {
	var f flags
	fs := newFlagSet(&f)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage()
	text := out.String()
	lines := strings.Split(text, "\n")
	if lines[0] != usageSummary || len(lines[0]) > 80 || lines[1] != "" {
		t.Fatalf("-h should start with the one-line summary and a blank line; it starts:\n%s\n%s", lines[0], lines[1])
	}

	grouped := map[string]string{}
	for _, g := range flagGroups {
		for _, name := range g.names {
			if prev, dup := grouped[name]; dup {
				t.Errorf("-%s is in two groups: %q and %q", name, prev, g.title)
			}
			grouped[name] = g.title
		}
	}
	fs.VisitAll(func(fl *flag.Flag) {
		if _, ok := grouped[fl.Name]; !ok {
			t.Errorf("-%s is in no group of flagGroups, so -h does not list it", fl.Name)
		}
		if n := strings.Count(text, "\n  -"+fl.Name+" ") + strings.Count(text, "\n  -"+fl.Name+"\n"); n != 1 {
			t.Errorf("-%s is listed %d times in -h", fl.Name, n)
		}
	})
	for name := range grouped {
		if fs.Lookup(name) == nil {
			t.Errorf("flagGroups names -%s, which is not a flag", name)
		}
	}

	child := strings.Index(text, "\nChild processes")
	if child < 0 {
		t.Fatalf("-h has no child-process group:\n%s", text)
	}
	for _, name := range []string{"role", "impl", "listen", "url", "conns"} {
		if i := strings.Index(text, "\n  -"+name+" "); i < child {
			t.Errorf("-%s is not listed under the child-process group", name)
		}
	}
}

// Defaults in -h are the defined ones, even for flags given before -h.
func TestUsageShowsDefinedDefaults(t *testing.T) {
	var f flags
	fs := newFlagSet(&f)
	fs.Init("bench", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	if err := fs.Parse([]string{"-rounds", "3", "-h"}); err != flag.ErrHelp {
		t.Fatalf("Parse(-rounds 3 -h) = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "(implementations interleaved in each) (default 5)") {
		t.Fatalf("-rounds should show its default 5:\n%s", out.String())
	}
}
