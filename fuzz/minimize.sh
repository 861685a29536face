#!/usr/bin/env bash
# Minimizes the committed corpus of one fuzz target, in place, to at most
# MAX files (default 300), keeping as much edge coverage as fits.
#
#   ./minimize.sh parse        # from fuzz/
#   ./minimize.sh framer 200
#
# 1. `cargo fuzz cmin` with edge coverage only (`-use_counters=0`; hit
#    counts would keep hundreds of near-duplicates) and libFuzzer's set-cover
#    merge: the smallest set of files that keeps every edge.
# 2. If that is still more than MAX files: the edges of each file alone
#    (one merge run per file), then a greedy set cover in awk (the file
#    adding most edges not yet kept, the smaller on a tie) until MAX files.
#    Prints the share of edges kept.
set -euo pipefail
cd "$(dirname "$0")"

target="${1:?usage: minimize.sh TARGET [MAX]}"
max="${2:-300}"
corpus="corpus/$target"

cargo fuzz cmin "$target" -s none -- -use_counters=0 -set_cover_merge=1 2>&1 | tail -n 1
count=$(find "$corpus" -type f | wc -l)
if [ "$count" -le "$max" ]; then
  echo "$target: $count files, every edge kept"
  exit 0
fi

bin="target/$(rustc -vV | sed -n 's/^host: //p')/release/$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/empty" "$work/one"
# One line per file: size, path, then its edges (PC table indices). A merge
# reads directories only, so each file goes alone into one; the output
# directory (which the merge copies the file into) is emptied each time.
find "$corpus" -type f | while read -r f; do
  cp "$f" "$work/one/"
  "$bin" -merge=1 -use_counters=0 -merge_control_file="$work/ctl" "$work/empty" "$work/one" \
    </dev/null >/dev/null 2>&1 || true
  edges=$(awk '/^COV /{ $1 = ""; $2 = ""; print }' "$work/ctl" 2>/dev/null || true)
  rm -f "$work/ctl" "$work/one/"* "$work/empty/"*
  echo "$(wc -c <"$f") $f $edges"
done >"$work/edges"

awk -v max="$max" '
  { size[NR] = $1; path[NR] = $2; n = 0
    for (i = 3; i <= NF; i++) { e[NR, ++n] = $i; all[$i] = 1 }
    ne[NR] = n }
  END {
    total = length(all)
    for (k = 1; k <= max; k++) {
      best = 0; gain = 0
      for (f = 1; f <= NR; f++) {
        if (f in kept) continue
        g = 0
        for (i = 1; i <= ne[f]; i++) if (!((e[f, i]) in have)) g++
        if (g > gain || (g == gain && g > 0 && size[f] < size[best])) { best = f; gain = g }
      }
      if (gain == 0) break
      kept[best] = 1
      for (i = 1; i <= ne[best]; i++) have[e[best, i]] = 1
    }
    for (f = 1; f <= NR; f++) if (!(f in kept)) print path[f] > "/dev/stderr"
    printf "%d files, %d of %d edges kept\n", length(kept), length(have), total
  }' "$work/edges" 2>"$work/drop"
xargs -r rm -f <"$work/drop"
echo "$target: $(find "$corpus" -type f | wc -l) files"
