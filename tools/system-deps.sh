#!/usr/bin/env bash
# System packages the tests need, from Debian: installed when missing and we run as root.
# Elsewhere the tests that need them skip with a reason; under CI=true a missing one fails.
#   chromium: the browser tests (driven by Playwright with executable_path=/usr/bin/chromium;
#             never a downloaded browser)
#   postgresql: the PostgreSQL voice store's tests (tests/pgtool.py starts a private server on a
#             temporary directory and port with initdb + pg_ctl; the packaged one is not used)
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
elif [ "${CI:-}" = "true" ]; then
  echo "missing system packages: ${missing[*]} (CI needs them; run as root or install them)" >&2
  exit 1
else
  echo "note: ${missing[*]} not installed and not root: the tests that need them will skip" >&2
fi
