#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) with everything the tools and tests need.
# Sourced by scripts/demo.sh and scripts/test.sh. Idempotent: a stamp of pyproject.toml's hash
# skips the install when nothing changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SLOVO_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${SLOVO_EXTRAS:-edge,web,mqtt,train,dev}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.slovo-edge-stamp"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing slovo-edge[$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  case ",$EXTRAS," in
    # The pinned CPU build first: an unpinned torch would pull a multi-GB CUDA build.
    *,train,*) "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" ;;
  esac
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
