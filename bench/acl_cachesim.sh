#!/usr/bin/env bash
# What one L3/L4 classification costs in instructions and cache misses, counted rather than timed:
# acl_classify_bench's bitmap engine under callgrind's cache simulation (32 KB L1, and a 1 MB last level as
# this VM's per-core L2: its shared L3 barely helps, see DESIGN.md). Timings on a shared VM move by 30% from
# run to run; these counts do not, so they show what a change to the classifier did. Baseline: the same
# engine at 10 rules, in the same script. Needs valgrind and a built bench:
#   bash bench/acl_cachesim.sh [build/release/bench/acl_classify_bench]
set -euo pipefail
bench=${1:-build/release/bench/acl_classify_bench}
[[ -x $bench ]] || { echo "no benchmark binary at $bench (build it first, see BENCHMARKS.md)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints "instructions last-level-misses L1-misses" per classified tuple for one benchmark.
measure() {
  # The benchmark's name has slashes: flatten it, not the temporary directory's path.
  local name=$1 perCall=$2 out="$work/${1//\//_}.out"
  valgrind --tool=callgrind --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=1048576,16,64 \
    --callgrind-out-file="$out" "$bench" --benchmark_filter="^$name\$" --benchmark_min_time=0.05 \
    >/dev/null 2>&1
  # The classifier's inclusive cost, and how many calls it took (classify calls classifyBurst once per call
  # of up to 64 tuples: the bench passes 32, or 1 for the One variants).
  local cost calls
  cost=$(callgrind_annotate --threshold=100 --inclusive=yes --show=Ir,DLmr,D1mr "$out" |
    grep 'L34Classifier::classify(' | head -1 | tr -d ',' | sed 's/([^)]*)//g')
  calls=$(callgrind_annotate --threshold=100 --tree=caller --show=Ir "$out" |
    grep '< .*L34Classifier::classify(' | grep -oE '\([0-9,]+x\)' | head -1 | tr -d '(),x')
  [[ -n $cost && -n $calls ]] || { echo "no classify calls counted for $name" >&2; exit 1; }
  awk -v calls="$calls" -v per="$perCall" '{ n = calls * per; printf "%d %.2f %.2f\n", $1 / n, $2 / n, $3 / n }' \
    <<<"$cost"
}

printf '%-42s %14s %18s %14s\n' benchmark instructions last-level-misses L1-misses
declare -A results
for variant in "BM_AclClassify 32" "BM_AclClassifyOne 1" "BM_AclClassifySkewed 32"; do
  read -r family perCall <<<"$variant"
  for rules in 10 1000 10000 100000; do
    name="$family/rules:$rules/alg:-1"
    result=$(measure "$name" "$perCall")
    results[$name]=$result
    read -r ir ll l1 <<<"$result"
    printf '%-42s %14s %18s %14s\n' "$name" "$ir" "$ll" "$l1"
  done
done
echo
echo "100k rules against 10 (the goal is a cost at most 1.5x):"
for family in BM_AclClassify BM_AclClassifyOne BM_AclClassifySkewed; do
  read -r bigIr bigLl _ <<<"${results[$family/rules:100000/alg:-1]}"
  read -r smallIr smallLl _ <<<"${results[$family/rules:10/alg:-1]}"
  awk -v f="$family" -v a="$bigIr" -v b="$smallIr" -v c="$bigLl" -v d="$smallLl" \
    'BEGIN { printf "%-24s instructions %.2fx, last-level misses %.2f against %.2f a lookup\n", f, a / b, c, d }'
done
