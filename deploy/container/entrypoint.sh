#!/bin/sh
# The image's entrypoint: refuses root, finds the weights mounted at /models, checks that /data is
# writable, then execs chattts-server. exec keeps the server as PID 1, so `docker stop` / `podman
# stop` (SIGTERM) reaches it and its graceful shutdown runs: in-flight requests finish, bounded by
# CHATTTS_SERVER_GRACEFUL_SHUTDOWN_S, and it exits 0.
#
#   (no arguments) | serve [FLAGS]    the server (flags as `chattts-server serve`)
#   --flag ...                        the same: `serve --flag ...`
#   make-test-model | synth | certs | say | voices ...   other chattts-server commands
#   anything else                     run as a command (e.g. sh)
#
# Env: CHATTTS_ALLOW_ROOT=1 runs as root anyway; CHATTTS_SERVER_* are the server's settings.
set -eu

if [ "$(id -u)" = 0 ] && [ "${CHATTTS_ALLOW_ROOT:-0}" != 1 ]; then
  cat >&2 <<'EOF'
chattts-entrypoint: refusing to run as root. The image runs as the unprivileged user chattts
(uid 10001) by default: drop `--user 0` / `user: root`, or set CHATTTS_ALLOW_ROOT=1 to run as
root anyway.
EOF
  exit 77
fi

case "${1:-serve}" in
  -*) set -- serve "$@" ;;
esac
case "${1:-serve}" in
  serve | make-test-model | synth | certs | say | voices) ;;
  *) exec "$@" ;;
esac
[ $# -gt 0 ] || set -- serve

if [ "$1" = serve ]; then
  # The weights: CHATTTS_SERVER_MODEL_DIR (or --model-dir) when given, else /models when
  # something holding asset/ is mounted there, else the server tries ChatTTS's hub download into
  # /data/huggingface and, without network, exits with its advice.
  if [ -z "${CHATTTS_SERVER_MODEL_DIR:-}" ]; then
    if [ -e /models/asset ]; then
      export CHATTTS_SERVER_MODEL_DIR=/models
    else
      echo "chattts-entrypoint: no weights at /models (mount the folder that holds asset/," \
        "e.g. -v /path/to/ChatTTS:/models:ro); the server tries the hub download" >&2
    fi
  fi
  data_dir="${CHATTTS_SERVER_DATA_DIR:-/data}"
  if [ -d "$data_dir" ] && [ ! -w "$data_dir" ]; then
    echo "chattts-entrypoint: the data dir $data_dir (saved voices) is not writable by uid" \
      "$(id -u): use a named volume, or chown the host folder to $(id -u)" >&2
    exit 73
  fi
fi

exec chattts-server "$@"
