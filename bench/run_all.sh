#!/bin/sh
# run_all.sh - every benchmark in one go, inside a loopback-only network namespace, then the
# README's performance table.
#
# usage: bench/run_all.sh [--quick] [--no-peer] [--out DIR]
#   --quick    short runs (a few minutes) to check that everything works; the figures are rough
#   --no-peer  skip OpenClaw's own node host (`openclaw node run`) in the side-by-side benchmarks
#   --out DIR  keep every output here (default: bench-results-<date> in the current directory)
#
# The full run takes about an hour: start_to_hello measures 10 starts of each node with a 30 s
# settle and a 60 s idle window each. Run it on a quiet machine; the numbers are only as good as
# the machine is idle. Each benchmark starts (and stops) its own real gateway.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py="$repo/.venv/bin/python"

quick=0
peer="--peer"
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --no-peer) peer="" ;;
        --out) shift; out="$1" ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

# Re-enter through scripts/in-netns unless we are already in a loopback-only namespace.
if ! "$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); from tests.support.real_gateway import check_isolated; check_isolated()' "$repo" 2>/dev/null; then
    args=""
    [ "$quick" = 1 ] && args="$args --quick"
    [ -z "$peer" ] && args="$args --no-peer"
    [ -n "$out" ] && args="$args --out $out"
    # shellcheck disable=SC2086
    exec "$repo/scripts/in-netns" sh "$0" $args
fi

out=${out:-"bench-results-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

if [ "$quick" = 1 ]; then
    s2h="--runs 3 --settle 5 --idle 10"
    tp="--frames 20000 --repeats 3 --invokes 200"
    rc="--restarts 2"
    many="--sizes 10,100 --settle 3 --idle 5"
    imp="--runs 3"
    tools="--calls 50 --starts 2 --settle 3"
else
    s2h="--runs 10 --settle 30 --idle 60"
    tp="--frames 100000 --repeats 5 --invokes 500"
    rc="--restarts 5"
    many="--sizes 10,100,500 --settle 5 --idle 30"
    imp="--runs 10"
    tools="--calls 200 --starts 5 --settle 10"
fi

failed=""
run() {  # run NAME ARGS...: figures to $out/NAME.txt (then the terminal), JSON line to $results
    name=$1; shift
    echo "== $name $* (progress: tail -f $out/$name.stderr)" >&2
    # shellcheck disable=SC2068
    if "$py" "$here/$name.py" $@ >"$out/$name.txt" 2>"$out/$name.stderr"; then
        grep -v '^{"bench":' "$out/$name.txt" || true
    else
        echo "== $name FAILED; last lines of $out/$name.stderr:" >&2
        tail -n 20 "$out/$name.stderr" >&2
        failed="$failed $name"
    fi
    grep '^{"bench":' "$out/$name.txt" >>"$results" || true
}

# shellcheck disable=SC2086
run import_cost $imp
run cli_start
# shellcheck disable=SC2086
run throughput $tp
# shellcheck disable=SC2086
run reconnect $rc $peer
# shellcheck disable=SC2086
run many_agents $many
# shellcheck disable=SC2086
run tools $tools
# shellcheck disable=SC2086
run start_to_hello $s2h $peer --out "$out/start_to_hello-logs"

"$py" "$here/summary.py" "$results" >"$out/summary.md"
cat "$out/summary.md"
echo "== results in $out (summary.md, results.jsonl, one .txt/.stderr per benchmark)" >&2
if [ -n "$failed" ]; then
    echo "== failed:$failed" >&2
    exit 1
fi
