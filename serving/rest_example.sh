#!/usr/bin/env bash
# TF Serving's REST API (port 8501), against TF Serving or `dcgan serve`:
# status, metadata, then four samples by seed, their PNGs decoded from base64 into ./rest_*.png.
set -euo pipefail
HOST="${1:-localhost:8501}"
URL="http://${HOST}/v1/models/dcgan"

curl -s "$URL"; echo                       # {"model_version_status": [{"version": "1", "state": "AVAILABLE", ...}]}
curl -s "$URL/metadata" | head -c 400; echo

# Row format: one instance per seed; `png_bytes` comes back as {"b64": "..."}.
curl -s -X POST "$URL:predict" \
  -d '{"signature_name": "from_seeds", "instances": [0, 1, 2, 3]}' \
  | python3 -c '
import base64, json, sys
for i, row in enumerate(json.load(sys.stdin)["predictions"]):
    open(f"rest_{i}.png", "wb").write(base64.b64decode(row["png_bytes"]["b64"]))
    print(f"rest_{i}.png", len(row["images"]), "x", len(row["images"][0]))
'
# Columnar format with explicit latents (z_dim values per row; 100 for the paper presets):
# curl -s -X POST "$URL:predict" -d '{"inputs": {"z": [[0.1, -0.3, ...]]}}'
