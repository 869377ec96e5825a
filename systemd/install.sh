#!/bin/sh
# Install slovo-edge as a systemd service on a device (Raspberry Pi OS / Debian / Ubuntu, as root).
# This is the one install recipe: the README, slovo-edge.service's header and the deployment test
# (tests/test_deploy_systemd.py) all run it.
#
#   sudo systemd/install.sh [--python PYTHON] [--web] [--speak] [--mqtt] [--model SOURCE [--model-sha256 HEX]] WHEEL
#
# WHEEL is slovo-edge's wheel (build it anywhere with `python3 -m pip wheel --no-deps -w dist .`).
# Steps: check the interpreter is CPython 3.11 or 3.12 -> a fresh venv in /opt/slovo-edge/venv ->
# the pinned device dependencies (requirements-edge.lock, --no-deps: no resolver, no GUI OpenCV,
# none of the ~500 MB mediapipe asks for but never uses) -> the wheel (--no-deps) -> bytecode for
# what the daemon imports -> the unit, an example config (never overwriting yours) and the docs
# the unit's Documentation= names. Stop the service before upgrading: the venv is recreated.
# --web also installs the dashboard (slr-web): requirements-web.lock on top, and slovo-web.service.
# --speak also installs speech output (slr-speak): espeak-ng (apt-get, if it is missing) and
# slovo-speak.service.
# --mqtt also installs the MQTT bridge (slr-mqtt): requirements-mqtt.lock on top, and slovo-mqtt.service.
# --model SOURCE fetches the model with the installed `slr-model fetch` (the same checks: checksum,
# trust on first use, the model contract; no PyTorch on the device, so SOURCE is a prebuilt .onnx
# URL or file, or a registry name whose cache already holds its export) into the cache
# /var/lib/slovo-edge/models and installs it as /var/lib/slovo-edge/model.onnx, the config's model.
# pip's own settings apply, e.g. PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels for an offline install.
# Then (without --model): put the model at /var/lib/slovo-edge/model.onnx, edit /etc/slovo-edge/config.toml, and
# `systemctl enable --now slovo-edge`.
set -eu

PREFIX=/opt/slovo-edge
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=python3
WEB=0
SPEAK=0
MQTT=0
MODEL=""
MODEL_SHA=""
STATE=/var/lib/slovo-edge

usage() {
  echo "usage: $0 [--python PYTHON] [--web] [--speak] [--mqtt] [--model SOURCE [--model-sha256 HEX]] WHEEL" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --python) [ $# -ge 2 ] || usage; PYTHON="$2"; shift 2 ;;
    --web) WEB=1; shift ;;
    --speak) SPEAK=1; shift ;;
    --mqtt) MQTT=1; shift ;;
    --model) [ $# -ge 2 ] || usage; MODEL="$2"; shift 2 ;;
    --model-sha256) [ $# -ge 2 ] || usage; MODEL_SHA="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
[ -z "$MODEL_SHA" ] || [ -n "$MODEL" ] || { echo "install.sh: error: --model-sha256 needs --model" >&2; exit 2; }
WHEEL="$1"
[ -f "$WHEEL" ] || { echo "install.sh: error: no such wheel: $WHEEL" >&2; exit 2; }
command -v "$PYTHON" >/dev/null 2>&1 || { echo "install.sh: error: $PYTHON not found" >&2; exit 2; }

# mediapipe 0.10.18 (the only version with the bundled Holistic models) has wheels for CPython up
# to 3.12; the lock is pinned for 3.11 and 3.12. Debian trixie / Raspberry Pi OS 13 ship 3.13.
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
  version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo '?')"
  echo "install.sh: error: $PYTHON is Python $version; slovo-edge's device install needs CPython 3.11 or 3.12 (mediapipe 0.10.18 has no wheels for newer ones): use the arm64 container (Dockerfile.arm64) or pass --python python3.11/python3.12" >&2
  exit 2
fi

# A fresh venv each time, so an upgrade never keeps packages the lock no longer lists.
echo "==> venv $PREFIX/venv ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv --clear "$PREFIX/venv"
PIP="$PREFIX/venv/bin/python -m pip --disable-pip-version-check --no-input"
echo "==> device dependencies (requirements-edge.lock)"
$PIP install --quiet --no-deps --no-compile --only-binary=:all: -r "$SRC/requirements-edge.lock"
if [ "$WEB" = 1 ]; then
  echo "==> dashboard dependencies (requirements-web.lock)"
  $PIP install --quiet --no-deps --no-compile --only-binary=:all: -r "$SRC/requirements-web.lock"
fi
if [ "$MQTT" = 1 ]; then
  echo "==> MQTT bridge dependencies (requirements-mqtt.lock)"
  $PIP install --quiet --no-deps --no-compile --only-binary=:all: -r "$SRC/requirements-mqtt.lock"
fi
echo "==> slovo-edge ($(basename "$WHEEL"))"
$PIP install --quiet --no-deps --no-compile "$WHEEL"
# Bytecode for what the daemon imports only (the service cannot write it later), then drop pip:
# the device runs the venv, it does not manage it (rerun this script to upgrade).
"$PREFIX/venv/bin/python" -m edge.commands.precompile
$PIP uninstall --quiet --yes pip setuptools
"$PREFIX/venv/bin/slr-edge" --version
if [ "$WEB" = 1 ]; then
  "$PREFIX/venv/bin/slr-web" --version
fi
if [ "$SPEAK" = 1 ]; then
  if ! command -v espeak-ng >/dev/null 2>&1; then
    echo "==> espeak-ng (Debian package)"
    command -v apt-get >/dev/null 2>&1 \
      || { echo "install.sh: error: espeak-ng is missing and apt-get is not available" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng
  fi
  "$PREFIX/venv/bin/slr-speak" --version
fi
if [ "$MQTT" = 1 ]; then
  "$PREFIX/venv/bin/slr-mqtt" --version
fi

if [ -n "$MODEL" ]; then
  echo "==> model ($MODEL)"
  # slr-model prints one line and exits 2 for a bad source (nothing installed), 1 for a failed
  # download (rerun: it resumes from the cache).
  fetched="$(SLOVO_MODEL_CACHE="$STATE/models" "$PREFIX/venv/bin/slr-model" fetch --quiet \
    ${MODEL_SHA:+--sha256 "$MODEL_SHA"} "$MODEL")"
  install -D -m 0644 "$fetched" "$STATE/model.onnx"
fi

echo "==> unit, config, docs"
install -D -m 0644 "$SRC/systemd/slovo-edge.service" /etc/systemd/system/slovo-edge.service
if [ "$WEB" = 1 ]; then
  install -D -m 0644 "$SRC/systemd/slovo-web.service" /etc/systemd/system/slovo-web.service
fi
if [ "$SPEAK" = 1 ]; then
  install -D -m 0644 "$SRC/systemd/slovo-speak.service" /etc/systemd/system/slovo-speak.service
fi
if [ "$MQTT" = 1 ]; then
  install -D -m 0644 "$SRC/systemd/slovo-mqtt.service" /etc/systemd/system/slovo-mqtt.service
fi
if [ -e /etc/slovo-edge/config.toml ]; then
  echo "keeping the existing /etc/slovo-edge/config.toml"
else
  install -D -m 0644 "$SRC/systemd/slovo-edge.toml.example" /etc/slovo-edge/config.toml
fi
install -D -m 0644 "$SRC/README.md" "$PREFIX/docs/README.md"
install -D -m 0644 "$SRC/docs/PROTOCOL.md" "$PREFIX/docs/PROTOCOL.md"
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
if [ -n "$MODEL" ]; then
  echo "installed, with the model at $STATE/model.onnx. Next: edit /etc/slovo-edge/config.toml, then"
else
  echo "installed. Next: model at $STATE/model.onnx (or rerun with --model), edit /etc/slovo-edge/config.toml, then"
fi
echo "  systemctl enable --now slovo-edge && journalctl -fu slovo-edge"
if [ "$WEB" = 1 ]; then
  echo "  systemctl enable --now slovo-web    # the dashboard, http://127.0.0.1:8080/"
fi
if [ "$SPEAK" = 1 ]; then
  echo "  systemctl enable --now slovo-speak  # recognised signs spoken (espeak-ng, voice ru)"
fi
if [ "$MQTT" = 1 ]; then
  echo "  set [mqtt] in /etc/slovo-edge/config.toml, the password in /etc/slovo-edge/mqtt.password (0600), then"
  echo "  systemctl enable --now slovo-mqtt   # the MQTT bridge"
fi
