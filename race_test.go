//go:build race

package wsactor_test

// raceDetector: the race detector slows code 2–20×, so latency budgets of
// tests that run under it are scaled (see hostileRTT).
const raceDetector = true
