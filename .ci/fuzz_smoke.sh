#!/usr/bin/env bash
# Smoke-runs every cargo-fuzz target of fuzz/ for a short time (FUZZ_SECONDS, default 30)
# from its committed seeds, in a scratch corpus so the repository is not touched. Fails on
# the first crash, printing the reproducer's path. Needs the nightly toolchain; installs
# cargo-fuzz if absent. The build (AddressSanitizer, the whole crate) takes ~10 minutes on
# two cores; the runs take FUZZ_SECONDS per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-30}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build
SCRATCH=$(mktemp -d /tmp/fuzz-smoke.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$SCRATCH/corpus/$target" "$SCRATCH/artifacts/$target"
  cp corpus/"$target"/seed-* "$SCRATCH/corpus/$target/"
  echo "== fuzz: $target for ${SECONDS_EACH}s"
  if ! cargo +nightly fuzz run "$target" "$SCRATCH/corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 \
      -artifact_prefix="$SCRATCH/artifacts/$target/" > "$SCRATCH/$target.log" 2>&1; then
    tail -40 "$SCRATCH/$target.log" >&2
    mkdir -p "artifacts/$target"
    cp "$SCRATCH/artifacts/$target/"* "artifacts/$target/" 2>/dev/null || true
    echo "fuzz_smoke: $target failed; reproducer copied to fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^#[0-9]+.*DONE' "$SCRATCH/$target.log" | tail -1
done
echo "fuzz_smoke: every target ran ${SECONDS_EACH}s without a finding"
