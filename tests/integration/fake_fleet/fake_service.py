"""A stand-in service for supervisor tests (run as ``python -m fake_service``).

Crashes on its first ``FAKE_CRASHES`` starts (default 1; counted in a file
under ``DECILE_STATE_DIR`` so the count survives restarts), then serves
``GET /readyz`` on ``DECILE_OBS__HTTP_PORT`` until SIGTERM.
``FAKE_GRANDCHILD=1`` leaves a sleeping child in its process group and
``FAKE_IGNORE_SIGTERM=1`` ignores SIGTERM, to prove the supervisor kills both.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
from pathlib import Path


class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/readyz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ready\n" if code == 200 else b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _stop(signum: int, frame: object) -> None:
    print("got SIGTERM, bye", flush=True)
    raise SystemExit(0)


def main() -> int:
    name = os.environ["DECILE_SERVICE"]
    port = int(os.environ["DECILE_OBS__HTTP_PORT"])
    counter = Path(os.environ["DECILE_STATE_DIR"]) / f"{name}.starts"
    starts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(starts))
    print(f"start {starts}", flush=True)
    if starts <= int(os.environ.get("FAKE_CRASHES", "1")):
        print("crashing on purpose", flush=True)
        return 3
    if os.environ.get("FAKE_GRANDCHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"grandchild {child.pid}", flush=True)
    if os.environ.get("FAKE_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, _stop)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Ready)
    print(f"ready on port {port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
