#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) one after another, then
# minimises its corpus so the checked-in copy stays small. Needs a nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   crates/vestibule-core/fuzz/run-all.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  mapfile -t TARGETS < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
for t in "${TARGETS[@]}"; do
  echo "=== $t: ${SECONDS_EACH}s"
  mkdir -p "fuzz/corpus/$t"
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::|Done|#[0-9]+ *DONE|==[0-9]+== ERROR|SUMMARY|thread .* panicked)' || true
  tmp=$(mktemp -d)
  cargo +nightly fuzz cmin "$t" "fuzz/corpus/$t" -- -max_len=4096 >/dev/null 2>&1 || true
  rm -rf "$tmp"
  echo "=== $t: corpus now $(ls "fuzz/corpus/$t" | wc -l) files"
done
