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

# System tools the tests need (Debian packages): systemd-analyze for the unit's static checks; for
# the deployment tests (pytest -m deploy: the unit booted with systemd-nspawn in an mmdebstrap root
# filesystem, the arm64 image built with podman and run under qemu-user) the rest; ffmpeg serves
# live network-camera streams to the fault, latency and segment tests; espeak-ng is slr-speak's
# text-to-speech engine (its tests write WAVs with it); mosquitto is the
# broker of the MQTT bridge's tests.
missing=""
for pair in systemd-analyze:systemd mmdebstrap:mmdebstrap arch-test:arch-test \
            systemd-nspawn:systemd-container qemu-aarch64-static:qemu-user-static podman:podman \
            ffmpeg:ffmpeg espeak-ng:espeak-ng \
            mosquitto:mosquitto mosquitto_sub:mosquitto-clients; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing$missing"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >/dev/null \
      || echo "error: could not install$missing; the tests that need them will fail" >&2
  else
    echo "warning: missing$missing and cannot install (needs root and apt-get); the tests that need them will fail" >&2
  fi
fi

# The dashboard's browser tests need Debian's headless Chromium, its driver and a font with Cyrillic.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium, chromium-driver, fonts-dejavu-core (browser tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core; } >/dev/null \
      || echo "warning: could not install chromium; the browser tests will fail" >&2
  else
    echo "warning: chromium/chromedriver not found and cannot install them (not root); the browser tests will fail" >&2
  fi
fi

# The accessibility tests inject axe-core (its npm package, the release in tests/axe-core.version)
# into the page; install it once into .cache/npm.
axe_version="$(cat "$ROOT/tests/axe-core.version")"
if ! grep -qs "\"version\": \"$axe_version\"" "$ROOT/.cache/npm/node_modules/axe-core/package.json"; then
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing npm (axe-core for the accessibility tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; } >/dev/null \
      || echo "warning: could not install npm; the accessibility tests will fail" >&2
  fi
  if command -v npm >/dev/null 2>&1; then
    echo "==> installing axe-core@$axe_version into .cache/npm"
    npm install --prefix "$ROOT/.cache/npm" --no-audit --no-fund --silent "axe-core@$axe_version" \
      || echo "warning: could not install axe-core; the accessibility tests will fail" >&2
  fi
fi

echo "==> ruff"
ruff check . || exit 1
ruff format --check . || exit 1

echo "==> mypy"
mypy || exit 1

echo "==> pytest"
python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests for this selection" >&2
  exit 0
fi
exit "$rc"
