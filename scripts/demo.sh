#!/usr/bin/env bash
# The main job: start the recognition daemon and a listener that prints what it publishes.
#
#   bash scripts/demo.sh [SOURCE] [extra slr-edge run flags...]
#
# SOURCE is a video file, /dev/videoN, a camera index or an rtsp/http URL. Default: /dev/video0
# when a camera is present, else the sample clip in ../shared/samples. The model is
# $SLOVO_MODEL when set, else an UNTRAINED edge-preset model exported on first use (its
# predictions are meaningless; see README "Real recognition" for the published weights).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" || exit 1

SOURCE="${1:-}"
[ $# -gt 0 ] && shift
if [ -z "$SOURCE" ]; then
  if [ -e /dev/video0 ]; then
    SOURCE=/dev/video0
  elif [ -f "$ROOT/../shared/samples/slovo_sample.mp4" ]; then
    SOURCE="$ROOT/../shared/samples/slovo_sample.mp4"
  else
    echo "error: no camera at /dev/video0 and no sample clip; give a video: bash scripts/demo.sh CLIP.mp4" >&2
    exit 2
  fi
fi

MODEL="${SLOVO_MODEL:-$ROOT/artifacts/untrained-edge.onnx}"
if [ ! -f "$MODEL" ]; then
  if [ -n "${SLOVO_MODEL:-}" ]; then
    echo "error: SLOVO_MODEL=$MODEL does not exist" >&2
    exit 2
  fi
  echo "==> exporting an UNTRAINED edge model to $MODEL (demo only: predictions are random)"
  mkdir -p "$(dirname "$MODEL")"
  slr-export --random-init edge -o "$MODEL" --no-latency || exit 2
fi

ENDPOINT="${SLR_EDGE_ENDPOINT:-tcp://127.0.0.1:5556}"
# A camera URL's password is shown the way every tool shows it (edge.camera.sources.redact).
SHOWN="$(python -c 'import sys; from edge.camera.sources import redact; print(redact(sys.argv[1]))' "$SOURCE" 2>/dev/null)" \
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

slr-listen --endpoint "$ENDPOINT" &
slr-edge run --source "$SOURCE" --model "$MODEL" --endpoint "$ENDPOINT" "$@" &
daemon=$!
wait "$daemon"  # a trapped signal ends this wait at once and runs the trap (exit 130)
rc=$?
daemon=""
[ "$rc" -eq 0 ] && sleep 0.5  # let the listener print the last messages
stop_all
exit "$rc"
