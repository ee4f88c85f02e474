#!/bin/sh
# The round bench on a GPU machine (issue 20's real-GPU targets), with how busy the GPU was.
#
#   gpu-round.sh <round-bench binary> <out folder>
#
# Build the binary here in release (`cargo bench -p tabswarm-learn --bench round --no-run`; it is
# target/release/deps/round-<hash>), carry it to the GPU machine, and run this there. It writes
#   round.md      the bench's table (TABSWARM_BENCH_BACKENDS, default wgpu; TABSWARM_BENCH_ROUNDS,
#                 default 5) and, last, the GPU's mean utilisation while the bench ran;
#   round.err     the bench's log (what the round sizing chose, and why);
#   gpu-util.csv  nvidia-smi's samples every 100 ms (timestamp, utilisation %, memory MiB), or one
#                 line saying why there are none.
# The utilisation covers the whole run (model set-up and the warm-up round included), so it
# understates how busy the timed rounds kept the GPU; compare it with the rounds' share of the run.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 <round-bench binary> <out folder>" >&2
    exit 2
fi
bin=$1
out=$2
if [ ! -x "$bin" ]; then
    echo "$0: $bin is not an executable (build it with: cargo bench -p tabswarm-learn --bench round --no-run)" >&2
    exit 2
fi
mkdir -p "$out" || exit 2
smi=
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 100 \
        >"$out/gpu-util.csv" 2>/dev/null &
    smi=$!
else
    echo "no nvidia-smi on this machine: GPU utilisation not sampled" >"$out/gpu-util.csv"
fi
status=0
TABSWARM_BENCH_BACKENDS=${TABSWARM_BENCH_BACKENDS:-wgpu} TABSWARM_BENCH_ROUNDS=${TABSWARM_BENCH_ROUNDS:-5} \
    "$bin" >"$out/round.md" 2>"$out/round.err" || status=$?
if [ -n "$smi" ]; then
    kill "$smi" 2>/dev/null
    wait "$smi" 2>/dev/null
fi
awk -F', ' 'NF >= 3 { sum += $2; n++ }
    END { if (n) printf "\nGPU utilisation while the bench ran: mean %.1f %% over %d samples (nvidia-smi, every 100 ms)\n", sum / n, n;
          else print "\nGPU utilisation: not sampled (see gpu-util.csv)" }' "$out/gpu-util.csv" >>"$out/round.md"
exit $status
