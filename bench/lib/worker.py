"""Runs one benchmark section inside the network namespace the driver made for it:

    ip netns exec NS python bench/lib/worker.py SECTION PARAMS.json OUT.json

Everything a section does acts on that namespace only: links, addresses, sysctls, nftables and
iptables rules, dnsmasq. Timed commands are started directly from this process (no `ip netns
exec` per command), so what is measured is the command itself plus fork/exec.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: `bench.` imports
from bench.sections import BY_NAME  # noqa: E402


def main() -> int:
    section, params_path, out_path = sys.argv[1:4]
    params = json.loads(Path(params_path).read_text())
    t0 = time.perf_counter()
    try:
        result = BY_NAME[section].measure(params)
        result["status"] = "ok"
    except Exception as exc:  # reported in the results, the other sections still run
        traceback.print_exc()
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}
    result["section_wall_s"] = round(time.perf_counter() - t0, 2)
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
