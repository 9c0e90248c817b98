#!/bin/bash
# rpcpy-table.sh: regenerate src/rpcpy/table.json, the command-line interface of SPDK's rpc.py for
# every method storkit has (positional params, flags, types, how the result is printed), which
# `storkit rpc` takes. Reads SPDK v24.01's rpc.py from ../shared/peers/spdk (run from anywhere;
# needs python3 and a built checkout).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RPCPY=$ROOT/../shared/peers/spdk/bin/rpc.py
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cp "$HERE/rpcpy-sitecustomize.py" "$T/sitecustomize.py"
METHODS=$(cd "$ROOT" && node -e "import('./packages/app/dist/src/index.js').then((m) => console.log(m.methodCatalog().map((x) => x.name).join(' ')))")
# shellcheck disable=SC2086
PYTHONPATH=$T python3 "$RPCPY" $METHODS > "$HERE/../src/rpcpy/table.json"
echo "wrote $(cd "$HERE/../src/rpcpy" && pwd)/table.json"
