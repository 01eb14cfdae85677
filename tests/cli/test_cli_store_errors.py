"""The CLI's line for store errors it has no phrase for (issue 18 item 14): the library's cause stays
on the one line (invalid bucket name, bad signature version, credentials in the endpoint URL), with
secrets redacted. Through the real CLI, in a subprocess, against moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.s3_server import FAKE_ENV, MotoS3

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `cache-utils`; (exit code, stderr). Its stdout must be empty: these all fail."""
    full_env = {**os.environ, **FAKE_ENV, "PYTHONPATH": str(ROOT), "TZ": "UTC", **(env or {})}
    result = subprocess.run([sys.executable, "-m", "cache_utils", *args], capture_output=True, text=True,
                            timeout=120, env=full_env, cwd=ROOT)
    assert result.stdout == ""
    return result.returncode, result.stderr


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "input/output error" not in lines[0]
    return lines[0]


def opts(**options: object) -> str:
    return json.dumps(options)


@pytest.mark.parametrize("command", [["ls", "--dir"], ["show", "p", "--dir"]])
def test_invalid_bucket_name_is_named(s3: MotoS3, command: list[str]) -> None:
    """Listing and reading alike; a read's store failure is not reported as a corrupt file."""
    code, err = cli(*command, "s3://Invalid_Bucket!/c", "--storage-options", opts(endpoint_url=s3.endpoint))
    line = one_line(err)
    assert code == 1
    assert 'Invalid bucket name "Invalid_Bucket!"' in line and "corrupt" not in line


def test_bad_signature_version_is_named(s3: MotoS3, bucket: str) -> None:
    options = opts(endpoint_url=s3.endpoint, config_kwargs={"signature_version": "s3v9"})
    code, err = cli("ls", "--dir", f"s3://{bucket}/c", "--storage-options", options)
    assert code == 1
    assert "Unknown Signature Version: s3v9" in one_line(err)


def test_credentials_in_the_endpoint_url_are_named_not_printed(s3: MotoS3, bucket: str) -> None:
    endpoint = s3.endpoint.replace("http://", f"http://{KEY_ID}:{SECRET}@")
    code, err = cli("ls", "--dir", f"s3://{bucket}/c", "--storage-options", opts(endpoint_url=endpoint))
    line = one_line(err)
    assert code == 1
    assert "credentials encoded in URL" in line and "endpoint_url" in line
    assert KEY_ID not in err and SECRET not in err


def test_an_endpoint_echoed_back_has_its_secrets_redacted(s3: MotoS3, bucket: str) -> None:
    """botocore quotes an endpoint it cannot use, query string and user info included."""
    endpoint = s3.endpoint.replace("http://", f"http://user:{SECRET}@") + f"/?X-Amz-Security-Token={TOKEN}"
    code, err = cli("ls", "--dir", f"s3://{bucket}/c", "--storage-options", opts(endpoint_url=endpoint))
    line = one_line(err)
    assert code == 1
    assert "was not a valid URI" in line and "X-Amz-Security-Token=***" in line
    assert SECRET not in err and TOKEN not in err


def test_environment_secrets_are_redacted_from_a_store_error(s3: MotoS3, bucket: str) -> None:
    """A secret from the environment that shows up in a store's message is never printed (here
    the endpoint carries the session token, as a misconfigured proxy URL might)."""
    endpoint = f"{s3.endpoint}/{TOKEN}?x=1"
    code, err = cli("ls", "--dir", f"s3://{bucket}/c", "--storage-options", opts(endpoint_url=endpoint),
                    env={"AWS_SESSION_TOKEN": TOKEN})
    line = one_line(err)
    assert code == 1 and "not a valid URI" in line
    assert TOKEN not in err
