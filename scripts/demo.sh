#!/usr/bin/env bash
# `make demo`: warm-start the base policy once (sfpo sft, under a minute on one core), then run
# the whole system on loopback (sfpo local: learner, 2 rollout workers, 1 verifier) with SFPO,
# printing a progress line per step and held-out accuracy every 5 steps.
set -euo pipefail
SFPO=${1:-build/cli/sfpo}
DIR=${2:-runs/demo}
BASE=runs/base-countdown3
if [ ! -f "$BASE/model.safetensors" ]; then
  echo "demo: training the base policy ($BASE) with sfpo sft..." >&2
  "$SFPO" sft --config configs/demo.yaml --set model.init= --out "$BASE" \
    --steps 300 --batch 64 --lr 3e-3 --log-every 100 2>&1 | grep --line-buffered -v '^[ #]\|^[a-z_]*:$' >&2
fi
rm -rf "$DIR"
mkdir -p "$DIR"
"$SFPO" local --config configs/demo.yaml --set run.output_dir="$DIR" \
  --endpoints-file "$DIR/endpoints.json" 2> >(grep --line-buffered -v '^[ #]\|^[a-z_]*:$' >&2)
echo "demo: step log in $DIR/steps.jsonl; plot with: $SFPO plot $DIR -o $DIR/plot.svg" >&2
