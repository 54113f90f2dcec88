//go:build !race

package wsactor_test

const raceDetector = false
