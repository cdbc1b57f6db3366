#!/usr/bin/env bash
# Runs every fuzz target (or those named) with cargo-fuzz for a bounded time each, then minimises its corpus.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET ...]      # default 600 s each, every target
#
# - installs cargo-fuzz (and the nightly toolchain's sources are not needed: `-s none`, since the code under test
#   forbids unsafe and a panic, a hang or an allocation over -rss_limit_mb is what we look for);
# - seeds tests/fuzz/seeds/ from the project's fixtures (seed.py), grows tests/fuzz/corpus/<target>/;
# - a crash, hang or OOM is written to tests/fuzz/artifacts/<target>/: copy it into tests/fuzz/regressions/<target>/
#   with a name saying what it was, fix the bug, and the corpus replay test (tests/tests/fuzz_corpus.rs) keeps it
#   fixed in CI;
# - each target's last stats line (executions, corpus size) goes to tests/fuzz/logs/<target>.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(raw_json cel_filter framed_avro registry_schema file_drop)
fi
if ! rustup toolchain list | grep -q nightly; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
python3 "$here/seed.py"
mkdir -p "$here/logs"
cd "$root"
for t in "${targets[@]}"; do
  mkdir -p "$here/corpus/$t" "$here/artifacts/$t"
  echo "fuzz: $t for ${secs}s" >&2
  # The file-drop reader wraps the workbook library, whose arithmetic overflows on hostile cell references; the
  # source catches that panic (the file goes to failed/), but libFuzzer's panic hook aborts even on caught
  # panics, so that target is built as production is: release, without overflow checks.
  mode=()
  if [ "$t" = file_drop ]; then mode=(-O); fi
  cargo +nightly fuzz run --fuzz-dir "$here" -s none "${mode[@]}" "$t" "$here/corpus/$t" "$here/seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=65536 \
    -artifact_prefix="$here/artifacts/$t/" -print_final_stats=1 >"$here/logs/$t.log" 2>&1 || {
      echo "fuzz: $t found a problem; see $here/logs/$t.log and $here/artifacts/$t/" >&2
      exit 1
    }
  grep -E "stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs" "$here/logs/$t.log" >&2 || true
done
