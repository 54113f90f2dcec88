//go:build race

package envelope_test

// raceEnabled: the race detector changes escape analysis in crypto/rand, so
// allocation counts of NewID are only checked without it.
const raceEnabled = true
