#!/bin/sh
# Regenerates the architecture-only models kept here (see README.md): each backbone with seeded
# random weights goes through `fastface export`, passes the parity gate, and only the .param
# and the card are kept. Needs the [export] extra. Usage: sh models/regenerate.sh
set -e
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python}"
"$PYTHON" -m fastface.cli export --random-init 0 --backbone mobilefacenet --embedding-size 128 \
    --architecture-only --out .
"$PYTHON" -m fastface.cli export --random-init 0 --backbone se_iresnet100 --embedding-size 512 \
    --architecture-only --out .
