#!/usr/bin/env bash
# Instructions per request of the core machine bench (`core/benches/machine.rs`), counted by
# valgrind's callgrind, for a baseline commit and the working tree in one run, with the ratio.
# Instruction counts do not drift with the VM's phase or with other work on the machine, so this
# is the paired comparison to trust when criterion's wall-clock medians move tens of percent.
#
#   bash scripts/bench-instructions.sh [BASELINE_REV]     (default: 7ba3d30, before issue 11)
#
# Needs valgrind (`apt-get install valgrind`). The baseline is built in a temporary worktree with
# its own target directory. Scenarios missing from the baseline's bench print "-".
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=${1:-7ba3d30}
scenarios=(sequential hedged_k2 sequential_openai_1k failover_429_then_200 weighted fastest)

bench_binary() { # dir -> path of the machine bench binary built there
    (cd "$1" && cargo bench -p f3dx-router-core --bench machine --no-run --message-format=json 2>/dev/null) |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "machine" and m.get("executable"):
        print(m["executable"])'
}

per_request() { # binary scenario -> instructions per one_request call, or "-"
    local out line ir calls
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --bench --profile-time 1 "request/$2\$" >/dev/null 2>&1 || true
    line=$(callgrind_annotate --tree=caller --inclusive=yes "$out" 2>/dev/null |
        grep -B8 '\* .*Bench::one_request' | grep 'Bencher<M>::iter' || true)
    rm -f "$out"
    if [[ -z $line ]]; then echo "-"; return; fi
    ir=$(awk '{gsub(",", "", $1); print $1}' <<<"$line")
    calls=$(grep -o '([0-9,]*x)' <<<"$line" | tr -d '(),x')
    echo $((ir / calls))
}

work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base_rev" >/dev/null 2>&1
base_bin=$(bench_binary "$work/base")
ours_bin=$(bench_binary .)

printf '%-24s %12s %12s %7s\n' scenario "base $base_rev" ours ratio
for s in "${scenarios[@]}"; do
    b=$(per_request "$base_bin" "$s")
    o=$(per_request "$ours_bin" "$s")
    ratio=-
    if [[ $b != - && $o != - ]]; then ratio=$(python3 -c "print(f'{$o / $b:.2f}')"); fi
    printf '%-24s %12s %12s %7s\n' "$s" "$b" "$o" "$ratio"
done
