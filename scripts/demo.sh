#!/usr/bin/env bash
# `make demo`: the whole system on loopback (sfpo local) with the built-in defaults.
set -euo pipefail
SFPO=${1:-build/cli/sfpo}
DIR=${2:-runs/demo}
mkdir -p "$DIR"
exec "$SFPO" local --config configs/demo.yaml --set run.output_dir="$DIR" \
  --endpoints-file "$DIR/endpoints.json" --run-for 10
