"""A real S3 HTTP endpoint on loopback: moto in server mode, as its own process."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from dvd_platform.dev.stack.procs import StackError, free_port, stop_pid


def ensure_buckets(client, buckets: list[str]) -> None:
    """Create the buckets that do not exist yet (an unreachable endpoint is a clear error)."""
    try:
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    except (BotoCoreError, ClientError) as exc:
        raise StackError(f"S3 endpoint {client.meta.endpoint_url} is not usable: {exc}") from exc
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


@dataclass
class MotoServer:
    """moto's S3 server started as a child process, logging to ``log_file`` (``moto_main``: moto's server with
    atomic conditional writes)."""

    log_file: Path
    port: int = 0
    pid: int | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        for attempt in range(3):
            self.port = free_port()
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dvd_platform.dev.stack.moto_main", "-H", "127.0.0.1", "-p", str(self.port)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,  # our own stop, not the terminal's Ctrl-C, ends it
                )
            self.pid = proc.pid
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break  # died: port taken or broken install; retry or report
                try:
                    urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1)
                    return
                except (urllib.error.URLError, ConnectionError, OSError):
                    time.sleep(0.1)
            stop_pid(proc.pid)
            proc.wait()
        tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
        raise StackError(f"moto S3 server did not come up on 127.0.0.1:{self.port}; log:\n{tail}")

    def stop(self) -> None:
        if self.pid:
            stop_pid(self.pid)
