#!/usr/bin/env bash
# Seeds every target's corpus with every recording in tests/fixtures (provider bodies, streams,
# error tables), and config_decode also with the example configs (behind the one byte it takes
# as its choice of string value). Run from fuzz/; corpus/ is not committed.
set -euo pipefail
cd "$(dirname "$0")"
recordings=$(find ../tests/fixtures -type f \( -name '*.json' -o -name '*.sse' \))
for target in sse_split anthropic_decode machine_ops rate_limit_headers config_decode; do
    mkdir -p "corpus/$target"
    for file in $recordings; do
        cp "$file" "corpus/$target/$(echo "$file" | tr '/' '_' | sed 's/^\.\._//')"
    done
done
for config in ../runtime-tokio/examples/*.json; do
    for choice in 0 1 2 3 4 5 6 7; do
        { printf "\\x0$choice"; cat "$config"; } > "corpus/config_decode/$(basename "$config").$choice"
    done
done
