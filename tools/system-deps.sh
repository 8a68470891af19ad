#!/usr/bin/env bash
# System packages the tests need, from Debian: installed when missing and we run as root.
# Elsewhere the tests that need them skip with a reason; under CI=true a missing one fails.
#   chromium: the browser tests (driven by Playwright with executable_path=/usr/bin/chromium;
#             never a downloaded browser)
#   postgresql: the PostgreSQL voice store's tests (tests/pgtool.py starts a private server on a
#             temporary directory and port with initdb + pg_ctl; the packaged one is not used)
#   prometheus: promtool checks and unit-tests deploy/prometheus/alerts.yml; tests/ops/ starts a
#             private Prometheus (tests/prometheustool.py) that scrapes the live test server.
#             Installed without its recommends (node exporter, smartmontools, ...). The tests
#             never use the packaged service (where systemd runs, the package starts it on :9090)
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || missing+=(postgresql)
lean=()  # installed with --no-install-recommends
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || lean+=(prometheus)
all=("${missing[@]}" "${lean[@]}")
[ ${#all[@]} -eq 0 ] && exit 0
apt_install() {
  apt-get install -y -q "$@" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${all[*]} (Debian packages) for the tests"
  export DEBIAN_FRONTEND=noninteractive
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  [ ${#lean[@]} -eq 0 ] || apt_install --no-install-recommends "${lean[@]}"
elif [ "${CI:-}" = "true" ]; then
  echo "missing system packages: ${all[*]} (CI needs them; run as root or install them)" >&2
  exit 1
else
  echo "note: ${all[*]} not installed and not root: the tests that need them will skip" >&2
fi
