"""The README's server command, run as CI can: start it, ask it once, see it stop.

``python -m EDITION --port 0 --max-requests 1``: read the real port from the
start-up line, GET /, and expect the hello page and a clean exit 0.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

module = sys.argv[1]
process = subprocess.Popen(
    [sys.executable, "-m", module, "--port", "0", "--max-requests", "1"],
    stderr=subprocess.PIPE,
    text=True,
    cwd="/",  # away from the checkout: the installed package must stand alone
)
try:
    assert process.stderr is not None
    for line in process.stderr:
        sys.stderr.write(line)
        if match := re.search(r"Listening on (http://\S+) ", line):
            break
    else:
        sys.exit(f"{module}: no start-up line")
    with urllib.request.urlopen(match.group(1) + "/", timeout=10) as response:
        body = response.read().decode()
    assert "Hi from Python" in body, body
    _, rest = process.communicate(timeout=15)
    sys.stderr.write(rest)
    status = process.returncode
    assert status == 0, f"{module} exited {status}"
    print(f"smoke: {module} served the hello page and exited 0")
finally:
    if process.poll() is None:
        process.kill()
