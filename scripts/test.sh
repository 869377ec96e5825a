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

# The systemd unit test needs systemd-analyze (Debian package: systemd).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing systemd (for systemd-analyze)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd; } >/dev/null \
      || echo "warning: could not install systemd; the unit test will fail" >&2
  else
    echo "warning: systemd-analyze not found and cannot install it (not root); the unit test will fail" >&2
  fi
fi

# The live-stream tests serve clips with ffmpeg into a local MPEG-TS socket.
if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing ffmpeg (live-stream tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg; } >/dev/null \
      || echo "warning: could not install ffmpeg; the live-stream tests will fail" >&2
  else
    echo "warning: ffmpeg not found and cannot install it (not root); the live-stream tests will fail" >&2
  fi
fi

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
