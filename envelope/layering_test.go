package envelope_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the package on its layer: std and google/uuid only, and
// no reflection-based JSON, I/O or networking in the codec itself.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]bool{"encoding/json": true, "reflect": true, "net": true, "os": true, "io": true}
	for _, imp := range pkg.Imports {
		std := !strings.Contains(strings.Split(imp, "/")[0], ".")
		if !(std || imp == "github.com/google/uuid") || forbidden[imp] {
			t.Errorf("envelope imports %q", imp)
		}
	}
}
