#!/usr/bin/env bash
# Serve exported generator versions with TF Serving: gRPC on 8500, REST on 8501.
#
#   serving/launch.sh exports/dcgan            # Docker image tensorflow/serving (default)
#   MODE=binary serving/launch.sh exports/dcgan  # tensorflow_model_server on PATH
#   MODE=local serving/launch.sh exports/dcgan   # keras-dcgan's local server (no TF Serving)
#
# EXPORT_BASE is the folder `dcgan export --export_base=...` wrote (version folders 1, 2, ...);
# new versions exported there are picked up while the server runs.
set -euo pipefail
EXPORT_BASE="$(cd "${1:?usage: launch.sh EXPORT_BASE}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
MODE="${MODE:-docker}"
GRPC_PORT="${GRPC_PORT:-8500}"
REST_PORT="${REST_PORT:-8501}"
IMAGE="${IMAGE:-tensorflow/serving:latest}"  # pin a tag for production

case "$MODE" in
  docker)
    exec docker run --rm -p "${GRPC_PORT}:8500" -p "${REST_PORT}:8501" \
      -v "${EXPORT_BASE}:/models/dcgan:ro" -v "${HERE}:/config:ro" "$IMAGE" \
      --model_config_file=/config/models.config \
      --enable_batching --batching_parameters_file=/config/batching_parameters.txt \
      --file_system_poll_wait_seconds=5
    ;;
  binary)
    CONFIG="$(mktemp)"
    sed "s#/models/dcgan#${EXPORT_BASE}#" "${HERE}/models.config" > "$CONFIG"
    exec tensorflow_model_server --port="$GRPC_PORT" --rest_api_port="$REST_PORT" \
      --model_config_file="$CONFIG" \
      --enable_batching --batching_parameters_file="${HERE}/batching_parameters.txt" \
      --file_system_poll_wait_seconds=5
    ;;
  local)
    exec dcgan serve --model_base_path="$EXPORT_BASE" --model_name=dcgan \
      --port="$GRPC_PORT" --rest_api_port="$REST_PORT" --file_system_poll_wait_seconds=5
    ;;
  *)
    echo "MODE must be docker, binary or local; got $MODE" >&2
    exit 2
    ;;
esac
