#!/usr/bin/env python3
"""The relay's heap by crate, per connected peer, from heaptrack stack files.

Each allocation still held is attributed to the innermost frame of its stack that belongs to a
named crate (tokio frames skipped: they only run the crates' tasks); what has none is
"unattributed". Used for docs/benchmarks.md, "Relay memory per peer: webrtc-rs without SRTP or
idle read buffers":

    heaptrack_interpret < raw | zstd > idle.zst        # the relay's raw heaptrack output
    heaptrack_print -f idle.zst -F stacks.txt --flamegraph-cost-type leaked
    loadgen/scripts/heap_by_crate.py --peers 100 before-stacks.txt after-stacks.txt
"""
import argparse
import collections
import re

CRATES = [
    "webrtc_srtp", "webrtc_sctp", "webrtc_dtls", "webrtc_ice", "webrtc_data", "webrtc_util",
    "webrtc_mdns", "webrtc", "interceptor", "libp2p_gossipsub", "libp2p_webrtc_utils",
    "libp2p_webrtc", "libp2p_swarm", "libp2p_identify", "libp2p_ping", "libp2p_noise",
    "libp2p_core", "libp2p", "tabswarm_relay", "stun", "turn", "rtcp", "rtp", "sdp",
]
FRAME = re.compile(r"\s*[<&]?\s*<?([A-Za-z_][A-Za-z0-9_]*)::")


def by_crate(path):
    held = collections.Counter()
    with open(path) as stacks:
        for line in stacks:
            stack, _, bytes_held = line.rstrip("\n").rpartition(" ")
            crate = "unattributed"
            for frame in reversed(stack.split(";")):
                match = FRAME.match(frame)
                if match and match.group(1) in CRATES:
                    crate = match.group(1)
                    break
            held[crate] += int(bytes_held)
    return held


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, required=True, help="peers connected when the heap was dumped")
    parser.add_argument("stacks", nargs="+", help="heaptrack_print -F output, one per relay")
    args = parser.parse_args()
    runs = [by_crate(path) for path in args.stacks]
    crates = sorted(set().union(*runs), key=lambda c: -max(run[c] for run in runs))
    print("KB a peer".ljust(22) + "".join(path[-24:].rjust(26) for path in args.stacks))
    for crate in crates + ["total"]:
        cells = [sum(run.values()) if crate == "total" else run[crate] for run in runs]
        print(crate.ljust(22) + "".join(f"{b / args.peers / 1000:26.1f}" for b in cells))


if __name__ == "__main__":
    main()
