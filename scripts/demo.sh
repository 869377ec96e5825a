#!/usr/bin/env bash
# The main job: start the recognition daemon, a listener that prints what it publishes, and the
# dashboard (slr-web, its URL printed), until Ctrl-C.
#
#   bash scripts/demo.sh [SOURCE] [extra slr-edge run flags...]
#
# SOURCE is a video file, /dev/videoN, a camera index or an rtsp/http URL. Default: /dev/video0
# when a camera is present, else the sample clip in ../shared/samples, played in a loop. The
# model is $SLOVO_MODEL when set (a file, or a registry name such as slovo-500), else the
# published SLR_SLOVO model (slr-model fetch slovo-500: from the cache, or downloaded and
# exported once), else, saying why in one line, an UNTRAINED edge-preset model (its predictions
# are meaningless). SLOVO_WEB_PORT=0 starts no dashboard.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# The demo installs what it runs: the device side and the dashboard. PyTorch (the `train` extra)
# comes later, and only if a model must be exported (see below); no test or dev tools.
export SLOVO_EXTRAS="${SLOVO_EXTRAS:-edge,web}"
# shellcheck source=bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" || exit 1

SOURCE="${1:-}"
[ $# -gt 0 ] && shift
LOOP=()
if [ -z "$SOURCE" ]; then
  if [ -e /dev/video0 ]; then
    SOURCE=/dev/video0
  elif [ -f "$ROOT/../shared/samples/slovo_sample.mp4" ]; then
    SOURCE="$ROOT/../shared/samples/slovo_sample.mp4"
    LOOP=(--loop)  # a 4-second clip: play it until Ctrl-C, like a camera
  else
    echo "error: no camera at /dev/video0 and no sample clip; give a video: bash scripts/demo.sh CLIP.mp4" >&2
    exit 2
  fi
fi

PUBLISHED=slovo-500
UNTRAINED="$ROOT/artifacts/untrained-edge.onnx"
MODEL=""
# Exporting (the published checkpoint, or the untrained stand-in) needs PyTorch: add the `train`
# extra only when no ready model is at hand.
if [ ! -f "${SLOVO_MODEL:-}" ] \
  && ! python -c "from edge.models.resolve import resolve_model as r; r('$PUBLISHED')" 2>/dev/null \
  && ! python -c "import torch" 2>/dev/null; then
  echo "==> a model must be exported: adding PyTorch (the 'train' extra) to $ROOT/.venv"
  SLOVO_EXTRAS="$SLOVO_EXTRAS,train" source "$ROOT/scripts/bootstrap.sh" || exit 1
fi
if [ -n "${SLOVO_MODEL:-}" ]; then
  if [ -f "$SLOVO_MODEL" ]; then
    MODEL="$SLOVO_MODEL"
  elif [[ "$SLOVO_MODEL" != */* && "$SLOVO_MODEL" != *.onnx ]]; then
    MODEL="$(slr-model fetch "$SLOVO_MODEL")" || exit 2  # a registry name
  else
    echo "error: SLOVO_MODEL=$SLOVO_MODEL does not exist" >&2
    exit 2
  fi
elif MODEL="$(SLOVO_MODEL_TIMEOUT="${SLOVO_MODEL_TIMEOUT:-15}" slr-model fetch "$PUBLISHED")"; then
  echo "==> model: the published $PUBLISHED"
else
  # slr-model said why in one line above (offline, Drive quota, no PyTorch to export...).
  echo "==> falling back to an UNTRAINED model (random words); for real recognition: slr-model fetch $PUBLISHED" >&2
  MODEL="$UNTRAINED"
  if [ ! -f "$MODEL" ]; then
    mkdir -p "$(dirname "$MODEL")"
    slr-export --random-init edge -o "$MODEL" --no-latency >/dev/null || exit 2
  fi
fi

ENDPOINT="${SLR_EDGE_ENDPOINT:-tcp://127.0.0.1:5556}"
# A camera URL's password is shown the way every tool shows it (edge.util.redact.redact).
SHOWN="$(python -c 'import sys; from edge.util.redact import redact; print(redact(sys.argv[1]))' "$SOURCE" 2>/dev/null)" \
  || SHOWN="(source)"
echo "==> daemon: $SHOWN -> $ENDPOINT (model $MODEL)"

daemon=""
# Stop whichever of the two still runs; either may be gone already (the daemon failed at start,
# the listener ended), which is not an error. Never leaves the listener behind to be reparented
# to PID 1 and print another daemon's messages.
stop_all() {
  # Every background job, not only those whose PID is already stored: a signal that arrives between
  # `slr-edge ... &` and `daemon=$!` would otherwise leave the daemon running after the script.
  local jobs_left
  jobs_left="$(jobs -p)"
  [ -n "$jobs_left" ] && kill -TERM $jobs_left 2>/dev/null
  wait 2>/dev/null
  return 0
}
trap 'trap - INT TERM; stop_all; exit 130' INT TERM

WEB_PORT="${SLOVO_WEB_PORT:-8080}"
if [ "$WEB_PORT" != 0 ] && command -v slr-web >/dev/null; then
  # The dashboard is a view: if it cannot start (port taken), the daemon and listener still run.
  slr-web --endpoint "$ENDPOINT" --model "$MODEL" --port "$WEB_PORT" --log-level WARNING &
  echo "==> dashboard: http://127.0.0.1:$WEB_PORT/  (Ctrl-C stops everything)"
fi
slr-listen --endpoint "$ENDPOINT" &
slr-edge run --source "$SOURCE" --model "$MODEL" --endpoint "$ENDPOINT" ${LOOP[@]+"${LOOP[@]}"} "$@" &
daemon=$!
wait "$daemon"  # a trapped signal ends this wait at once and runs the trap (exit 130)
rc=$?
daemon=""
[ "$rc" -eq 0 ] && sleep 0.5  # let the listener print the last messages
stop_all
exit "$rc"
