"""Growth of kvmnet's pure work with the size of the big topology, measured in this process:
reading and validating the file, the state dir cache's encode and decode of the validated
topology, and the render of its nft table. Every round runs each size in turn (the order
rotating) and each size keeps its fastest round. On this VM a whole process's time varies by
about 25% from run to run, and the machine's speed changes in phases lasting seconds. So whole-process
medians taken one size after another read those phases as growth, or hide it. Measured this way, a
quadratic step shows as a slope ratio near 2."""

from __future__ import annotations

import gc
import time

from kvmnet.config import loader, topojson
from kvmnet.render import nft

from .common import rotate

WORK = {
    "read and validate the file": lambda raw, topo, kept: loader.load_bytes(raw, "big.toml"),
    "encode for the cache": lambda raw, topo, kept: topojson.encode(topo),
    "decode from the cache": lambda raw, topo, kept: topojson.decode(kept, ""),
    "render the nft table": lambda raw, topo, kept: nft.render(topo, "kvmnet_big"),
}


def measure(texts: dict[str, str], rounds: int) -> dict[str, dict[str, float]]:
    """{work: {size: its fastest round, ms}} for topology texts by size label."""
    data = {}
    for size, text in texts.items():
        raw = text.encode()
        topo = loader.load_bytes(raw, "big.toml")
        data[size] = (raw, topo, topojson.encode(topo))
    times: dict = {work: {size: [] for size in texts} for work in WORK}
    collecting = gc.isenabled()
    gc.disable()  # as kvmnet's one-shot verbs run (kvmnet/entry.py)
    try:
        for r in range(rounds):
            for work, run in WORK.items():
                for size in rotate(list(texts), r):
                    t0 = time.perf_counter()
                    run(*data[size])
                    times[work][size].append((time.perf_counter() - t0) * 1000)
    finally:
        if collecting:
            gc.enable()
    return {work: {size: round(min(v), 3) for size, v in by_size.items()} for work, by_size in times.items()}
