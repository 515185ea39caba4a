#!/usr/bin/env bash
# Every stage that made checkpoints/shakespeare-char.safetensors, in order (about 6 hours on 2 cores).
# Each stage's settings are its file in recipes/shakespeare-char/; checkpoints/README.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
R=recipes/shakespeare-char O=out/shakespeare-char
train() { scratchgpt train "$@"; }

train --config $R/1-base.toml
train --config $R/2-refine.toml
train --config $R/3-context-512.toml
train --config $R/3-context-512.toml --init-from $O/char3.safetensors --eval-interval 400 \
    --seed 7 --out $O/char4.safetensors
scratchgpt export $O/char3.safetensors $O/char4.safetensors $O/char34.safetensors

for run in "a 3e-4 11" "c 6e-4 17" "d 3e-4 19" "f 6e-4 29"; do set -- $run
  train --config $R/4-context-1024.toml --init-from $O/char34.safetensors --lr "$2" --seed "$3" --out "$O/$1.safetensors"
done
scratchgpt export --dtype fp32 $O/char34.safetensors $O/a.safetensors $O/c.safetensors $O/sac.safetensors
train --config $R/4-context-1024.toml --init-from $O/sac.safetensors --seed 23 --out $O/e.safetensors
scratchgpt export $O/char34.safetensors $O/a.safetensors $O/c.safetensors $O/d.safetensors $O/e.safetensors \
    $O/f.safetensors $O/S.safetensors   # bf16: the model shipped before the distillation

for run in "g1 3e-4 41" "g2 6e-4 43" "h1 1e-4 47" "h2 1e-4 53"; do set -- $run
  train --config $R/4-context-1024.toml --init-from $O/S.safetensors --lr "$2" --seed "$3" --out "$O/$1.safetensors"
done
train --config $R/5-distill.toml
scratchgpt export $O/kd.safetensors $O/shakespeare-char.safetensors
echo "done: $O/shakespeare-char.safetensors (scratchgpt eval $O/shakespeare-char.safetensors)"
