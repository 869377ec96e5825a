#!/usr/bin/env bash
# The project's test command (README, .ci/run): fresh or refreshed .venv, lint, then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k preprocess`.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

if [ ! -d "$ROOT/../shared" ]; then
  echo "error: ../shared (reference vectors and sample clips) is missing beside the repository" >&2
  exit 1
fi

# shellcheck source=bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" || exit 1

# need COMMAND PACKAGE WHAT: apt-install the Debian PACKAGE when COMMAND is missing (WHAT needs it).
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing $2 (for $3)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"; } >/dev/null \
      || echo "warning: could not install $2; $3 will fail" >&2
  else
    echo "warning: $1 not found and cannot install it (not root); $3 will fail" >&2
  fi
}

need systemd-analyze systemd "the systemd unit test"
need ffmpeg ffmpeg "the live-stream tests (ffmpeg serves clips into a local MPEG-TS socket)"

echo "==> ruff"
ruff check . || exit 1
ruff format --check . || exit 1

echo "==> pytest"
python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests for this selection" >&2
  exit 0
fi
exit "$rc"
