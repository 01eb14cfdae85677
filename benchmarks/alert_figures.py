"""Alert bounds measured (issue 18): what an endless alert answer costs, and how many creates a
storm of loads sends. Prints a markdown table for docs/reliability.md.

1. Endless answer: a loopback server answers 200 and streams an endless body (~30 MB/s per
   connection); 5 alerts are sent to it with a 1 s timeout; 10 s later we record the process's
   resident memory growth, the alert threads still alive and the bytes the server could send.
2. Storm: 1,000 `load_cache` calls on one missing cache against the fake OpsGenie: creates sent.

Run from the repository root: `python -m benchmarks.alert_figures` (each scenario runs in a
process of its own).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie

ALERTS = 5
SETTLE = 10.0
LOADS = 1000


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Endless:
    """200, then an endless body until the client hangs up or `stop` is set."""

    def __init__(self) -> None:
        self.sent = 0
        self.stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                chunk = b" " * 65536
                try:
                    self.wfile.write(b'{"result": ')
                    while not fake.stop.is_set():
                        self.wfile.write(chunk)
                        fake.sent += len(chunk)
                        time.sleep(0.002)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def endless(kind: str) -> str:
    import cache_utils
    from cache_utils import Alert, OpsGenieAlerter, WebhookAlerter, send_alert

    if kind == "opsgenie":
        OpsGenieAlerter(TEST_API_KEY, "http://127.0.0.1:9", timeout=1)._alert_api()  # import the SDK first
    server = Endless()
    try:
        alerter = (OpsGenieAlerter(TEST_API_KEY, server.url, timeout=1) if kind == "opsgenie"
                   else WebhookAlerter(server.url + "/hook", timeout=1))
        cache_utils.configure_alerts()
        before = rss()
        start = time.perf_counter()
        for i in range(ALERTS):
            send_alert(Alert("endless", f"cache_utils:endless{i}"), alerter)
        took = (time.perf_counter() - start) / ALERTS
        time.sleep(SETTLE)
        alive = sum(t.name.startswith("cache-utils-") for t in threading.enumerate())
        grown = rss() - before
        sent = server.sent
    finally:
        server.close()
    return (f"| endless 200 answer, {kind}, {ALERTS} alerts, timeout 1 s | send_alert {took:.2f} s each; "
            f"{SETTLE:.0f} s later: **{alive} alert threads alive, memory +{grown / 2**20:,.0f} MiB**, "
            f"server sent {sent / 2**20:,.1f} MiB |")


def storm() -> str:
    import cache_utils
    from cache_utils import load_cache

    with FakeOpsGenie() as server, tempfile.TemporaryDirectory() as d:
        cache_utils.configure_alerts(api_key=TEST_API_KEY, api_url=server.url, timeout=2)
        start = time.perf_counter()
        for _ in range(LOADS):
            load_cache("storm", "00:00", d, allow_no_data=True, tz="UTC")
        took = time.perf_counter() - start
        creates = len(server.creates())
    cache_utils.configure_alerts()
    return (f"| alert storm | {LOADS:,} `load_cache` calls on one missing cache ({took:.1f} s): "
            f"**{creates:,} creates sent** |")


def main() -> None:
    """Each scenario in its own process, so one's memory and threads do not count in another's."""
    import subprocess
    import sys

    if len(sys.argv) > 1:
        print(storm() if sys.argv[1] == "storm" else endless(sys.argv[1]))
        return
    print("| scenario | result |\n| --- | --- |")
    for scenario in ("webhook", "opsgenie", "storm"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.alert_figures", scenario],
                             capture_output=True, text=True, check=True).stdout
        print(out.strip(), flush=True)


if __name__ == "__main__":
    main()
