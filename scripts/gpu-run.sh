#!/usr/bin/env bash
# The GPU machine's part of a run (it has the driver, compute-sanitizer, no Criterion): runs
# every bundled test binary, compute-sanitizer memcheck and racecheck over the CUDA suites, then
# memres-bench, writing logs and results into OUT (default ./gpu-out).
#   here:  cmake --preset dev && cmake --build --preset dev && cmake --preset release &&
#          cmake --build --preset release &&
#          ../shared/gpu-bundle.sh .gpu build/dev/tests/test_* &&
#          cp build/release/bench/memres-bench build/dev/tests/stress_* scripts/gpu-run.sh .gpu/
#          (bundle.sh stops on an executable that needs no shared library, so the bench and the
#          stress programs are copied by hand)
#   there: .gpu/gpu-run.sh "$OUT" [tests|sanitize|bench|devices|bars ...]
#   (bars: memres-bench --bars, three times, as bars-1..3.{txt,json})
set -uo pipefail
out=${1:-gpu-out}; shift || true
parts=${*:-tests sanitize bench}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export CUDA_MODULE_LOADING=LAZY
fail=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"

if [[ " $parts " == *" tests "* ]]; then
  for t in "$here"/test_* "$here"/stress_*; do
    name=$(basename "$t")
    start=$SECONDS
    "$here/run" "$name" --verbose=0 -j1 >"$out/$name.log" 2>&1
    rc=$?
    printf '%-22s rc=%d %4ds  %s\n' "$name" "$rc" "$((SECONDS - start))" \
      "$(grep -a 'Synthesis' "$out/$name.log" | tail -1)" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || fail=1
  done
fi

if [[ " $parts " == *" sanitize "* ]]; then
  for t in "$here"/test_cuda_*; do
    name=$(basename "$t")
    for tool in memcheck racecheck; do
      # the suites provoke CUDA API errors on purpose (out of memory, bad devices): count memory
      # errors and leaks only
      extra="--report-api-errors no"; [ $tool = memcheck ] && extra="$extra --leak-check full"
      LD_LIBRARY_PATH="$here/lib" timeout 240 compute-sanitizer --tool $tool $extra \
        --target-processes all --error-exitcode 9 "$t" --verbose=0 -j1 \
        >"$out/$name.$tool.log" 2>&1
      rc=$?
      printf '%-22s %-9s rc=%d  %s | %s\n' "$name" "$tool" "$rc" \
        "$(grep -a 'ERROR SUMMARY' "$out/$name.$tool.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';')" \
        "$(grep -a 'Synthesis' "$out/$name.$tool.log" | tail -1)" | tee -a "$out/summary.txt"
      [ $rc -eq 0 ] || fail=1
    done
  done
fi

if [[ " $parts " == *" bench "* ]]; then
  "$here/run" memres-bench --json "$out/bench.json" --plot "$out/bench.svg" >"$out/bench.txt" \
    2>"$out/bench.err"
  rc=$?
  echo "memres-bench rc=$rc" | tee -a "$out/summary.txt"
  [ $rc -eq 0 ] || fail=1
  cat "$out/bench.txt"
fi

if [[ " $parts " == *" devices "* ]]; then
  "$here/run" memres-bench --devices all --json "$out/devices.json" >"$out/devices.txt" \
    2>"$out/devices.err"
  rc=$?
  echo "memres-bench --devices all rc=$rc" | tee -a "$out/summary.txt"
  [ $rc -eq 0 ] || fail=1
  cat "$out/devices.txt"
fi
if [[ " $parts " == *" bars "* ]]; then
  for k in 1 2 3; do
    "$here/run" memres-bench --bars --json "$out/bars-$k.json" >"$out/bars-$k.txt" \
      2>"$out/bars-$k.err"
    rc=$?
    echo "memres-bench --bars ($k) rc=$rc" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || fail=1
    cat "$out/bars-$k.txt"
  done
fi
exit $fail
