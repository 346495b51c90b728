"""Import the modules listed in FILE (one per line) and exit: with the interpreter's start-up,
this process's wall time is what a kvmnet command pays before doing any work.

    python bench/lib/importprobe.py MODULES.txt
"""

import importlib
import sys

with open(sys.argv[1]) as f:
    names = [line.strip() for line in f if line.strip()]
for name in names:
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:  # a submodule that only imports in some context; the rest still counts
        pass
