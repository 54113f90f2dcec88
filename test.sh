#!/usr/bin/env bash
# Installs what the tests need (Node packages, Debian chromium when missing)
# and runs every test: Go (race detector on), the hostile-input table again
# without it (latency budgets), short fuzzes of the envelope decoder and the
# actor, and the JavaScript client's tests against real Primus and Chromium.
set -euo pipefail
cd "$(dirname "$0")"

echo "== installing test dependencies"
bash js/install-test-deps.sh

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== hostile inputs without the race detector, alone: the control connection's 100 ms budget"
go test -count=1 -run '^TestHostile$' .

echo "== idle read goroutines shrink back to 4 KiB (only without the race detector, which doubles the stack reserve)"
go test -count=1 -run '^(TestIdleReadStackShrinks|TestBusyReadStackKept)$' ./conn

echo "== idle memory: no read buffer held; idle client and server connections back at 4 KiB of stack, heap bounded (without the race detector, which adds to the heap and doubles the stack reserve)"
go test -count=1 -run '^TestIdle(Server|Client)ConnHoldsNoReadBuffer$' ./conn
go test -count=1 -run '^TestIdle(Client|Server)Memory$' .

echo "== fuzz the envelope decoder (short)"
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# fail a clean run with "context deadline exceeded" at the deadline
# (go.dev/issue/75804, fixed in Go 1.27).
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "${FUZZTIME:-1000000x}" ./envelope

echo "== fuzz the actor with frame sequences (short)"
# Also a count (see above). Each execution runs a live actor to its stop.
go test -run '^$' -fuzz '^FuzzFrameSequence$' -fuzztime "${FUZZTIME_ACTOR:-20000x}" ./actor

echo "== JavaScript client tests (real Primus server, real Chromium)"
node --test js/test/*.test.mjs
