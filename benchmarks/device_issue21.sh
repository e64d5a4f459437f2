#!/usr/bin/env bash
# Issue 21's hardware checks in one short run, for a lent machine whose CPU has what the
# 2-core AVX2 development machine lacks (AVX-512, AVX512-BF16, AMX): the CPU's flags, the
# ISA table (benchmarks/isa_compare.py: every ISA the CPU runs) and the bfloat16 speed grid
# (speed.py --precision bf16), 2 threads, 5 blocks a contender. Uses the machine's own
# python3 and torch (no venv: nothing can be fetched there); OpenVINO is reported n/a where
# it is not installed. Everything lands in one archive, $OUT/issue21.tar.gz (the device
# tool returns few files), and the tables are printed.
#
#   device run: bash benchmarks/device_issue21.sh          (timeout_s 590; ~8-10 min)
#   elsewhere:  OUT=/tmp/issue21 bash benchmarks/device_issue21.sh
#   smoke run:  QUICK=1 OUT=/tmp/issue21 bash benchmarks/device_issue21.sh   (toy grid)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to a folder for the results}"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export GRUKIT_CACHE="${GRUKIT_CACHE:-/tmp/grukit-cache}"
res="$OUT/issue21"
mkdir -p "$res"

{ lscpu; grep -m1 '^flags' /proc/cpuinfo; "$PY" -c 'import torch; print("torch", torch.__version__)'; } \
    > "$res/cpu.txt" 2>&1 || true
grep -E 'Model name|^CPU\(s\)' "$res/cpu.txt" || true
echo "bf16 / AVX-512 flags: $(grep -o -w -E 'avx512f|avx512_bf16|amx_bf16|amx_tile' \
    "$res/cpu.txt" | sort -u | tr '\n' ' ' || true)"

quick=()
[[ "${QUICK:-0}" == 1 ]] && quick=(--quick)
status=0
"$PY" benchmarks/isa_compare.py --threads 2 --repeats 5 "${quick[@]}" --out "$res/isa" \
    || status=$?
"$PY" benchmarks/speed.py --precision bf16 --backends native --threads 2 --repeats 5 \
    "${quick[@]}" --no-progress --out "$res/bf16" | tail -n 40 || status=$?
tar -czf "$OUT/issue21.tar.gz" -C "$OUT" issue21
exit "$status"
