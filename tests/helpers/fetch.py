"""GET a URL with a short timeout; print the body, or the error and exit 1."""

import sys
import urllib.request

try:
    print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 3).read().decode(), end="")
except Exception as exc:  # the test reads the message
    print(f"ERROR {exc}")
    sys.exit(1)
