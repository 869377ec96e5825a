#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) with everything the tools and tests need.
# Sourced by scripts/demo.sh and scripts/test.sh. Idempotent: a stamp of pyproject.toml's hash
# skips the install when nothing changed.
#
# No `set -e` here: this file is sourced, and shell options would leak into the caller (demo.sh's
# Ctrl-C trap and test.sh's exit-code handling must not die on the first failing command). Each
# step checks its own result instead; the caller does `source bootstrap.sh || exit 1`.

_slovo_bootstrap() {
  local root venv python extras stamp want hash
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  venv="${SLOVO_VENV:-$root/.venv}"
  python="${PYTHON:-python3}"
  extras="${SLOVO_EXTRAS:-edge,web,mqtt,train,dev}"

  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtualenv $venv"
    "$python" -m venv "$venv" || return 1
  fi

  # The stamp is "<pyproject hash> <extras installed>". A venv that already has every wanted extra
  # for this pyproject is left alone, so demo.sh (fewer extras) and test.sh (all) do not take
  # turns reinstalling; wanting more adds them and records the union.
  stamp="$venv/.slovo-edge-stamp"
  hash="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
  local have="" extra missing=""
  if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$hash" ]; then
    have="$(cut -s -d' ' -f2 "$stamp")"
  fi
  for extra in ${extras//,/ }; do
    case ",$have," in *",$extra,"*) ;; *) missing="$missing $extra" ;; esac
  done
  if [ -n "$have" ] && [ -n "$missing" ]; then
    extras="$have,$(echo $missing | tr ' ' ',')"
  fi
  want="$hash $extras"
  if [ ! -f "$stamp" ] || [ -n "$missing" ]; then
    echo "==> installing slovo-edge[$extras] into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip || return 1
    case ",$extras," in
      *,train,*)
        # The pinned CPU build first, from PyTorch's CPU wheel index: the default index's torch is
        # the multi-GB CUDA build. Where that index can't be reached (offline mirrors, a proxy that
        # serves only PyPI) the default index is the fall-back (a mirror's torch may be CPU-only).
        "$venv/bin/python" -m pip install --quiet --timeout 15 --retries 0 \
            --index-url "${SLOVO_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" "torch==2.13.0" 2>/dev/null \
          || { echo "==> PyTorch's CPU index unreachable; torch from the default index";
               "$venv/bin/python" -m pip install --quiet "torch==2.13.0"; } \
          || return 1
        ;;
    esac
    "$venv/bin/python" -m pip install --quiet -e "$root[$extras]" || return 1
    echo "$want" > "$stamp" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}

_slovo_bootstrap || { unset -f _slovo_bootstrap; return 1 2>/dev/null || exit 1; }
unset -f _slovo_bootstrap
