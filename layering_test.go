package wsactor_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering fails on a forbidden import edge between the project's
// packages (GUIDE.md's layering): each package may import only the project
// packages listed for it, plus the standard library and its third-party
// dependencies listed here (go list -deps: those of the packages it imports
// too).
func TestLayering(t *testing.T) {
	const mod = "github.com/wsactor/wsactor"
	allowed := map[string][]string{
		"envelope":   {"github.com/google/uuid"},
		"mailbox":    {},
		"supervisor": {"github.com/sourcegraph/conc"},
		"actor":      {mod + "/envelope", mod + "/mailbox", "github.com/google/uuid", "github.com/sourcegraph/conc"},
		"conn":       {mod + "/envelope", "github.com/google/uuid", "github.com/lxzan/gws", "github.com/klauspost/compress", "github.com/dolthub/maphash"}, // uuid through envelope (its ID)
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") || dep == mod+"/"+pkg {
				continue // standard library, or itself
			}
			if !allowedDep(dep, ok) {
				t.Errorf("%s imports %s, which the layering forbids", pkg, dep)
			}
		}
	}
}

func allowedDep(dep string, prefixes []string) bool {
	for _, p := range prefixes {
		if dep == p || strings.HasPrefix(dep, p+"/") {
			return true
		}
	}
	return false
}

// TestClusterLayering: the cluster package sits on the root package and
// nats.go only, and nothing else in the module (but tests) reaches NATS.
func TestClusterLayering(t *testing.T) {
	const mod = "github.com/wsactor/wsactor"
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, "./cluster").Output()
	if err != nil {
		t.Fatalf("go list cluster: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
			continue // standard library
		}
		if imp != mod && imp != "github.com/nats-io/nats.go" {
			t.Errorf("cluster imports %s; it may import only %s and github.com/nats-io/nats.go", imp, mod)
		}
	}
	for _, pkg := range []string{".", "./actor", "./conn", "./envelope", "./mailbox", "./supervisor"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		if strings.Contains(string(out), "github.com/nats-io/") {
			t.Errorf("%s depends on NATS; only cluster may", pkg)
		}
	}
}

// TestNoTracingDependency: OpenTelemetry is used by tests only
// (otel_example_test.go); no package of the module depends on it in a
// non-test build. Tracers plug in through WithTracePropagation.
func TestNoTracingDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list -deps ./...: %v", err)
	}
	if !strings.Contains(string(out), "github.com/wsactor/wsactor/actor") {
		t.Fatalf("go list -deps ./... did not list the module's packages:\n%s", out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "go.opentelemetry.io/") {
			t.Errorf("a non-test build depends on %s; OpenTelemetry belongs in _test.go files only", dep)
		}
	}
}

// TestPromLayering: the prom package sits on the root package and
// client_golang only, and no other package of the module (but tests and
// the programs that expose /metrics) reaches Prometheus: a user who does
// not want metrics does not pull it in.
func TestPromLayering(t *testing.T) {
	const mod = "github.com/wsactor/wsactor"
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, "./prom").Output()
	if err != nil {
		t.Fatalf("go list prom: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
			continue // standard library
		}
		if imp != mod && !strings.HasPrefix(imp, "github.com/prometheus/client_golang/") {
			t.Errorf("prom imports %s; it may import only %s and github.com/prometheus/client_golang", imp, mod)
		}
	}
	for _, pkg := range []string{".", "./actor", "./conn", "./envelope", "./mailbox", "./supervisor", "./cluster"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		if strings.Contains(string(out), "github.com/prometheus/") {
			t.Errorf("%s depends on Prometheus; only prom may", pkg)
		}
	}
}
