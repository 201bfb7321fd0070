"""A real InfluxDB 1.x server for tests (Debian's influxdb), on free ports in a temporary folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .mosquitto import free_port, missing


class InfluxDB:
    def __init__(self, folder: Path, database: str = "moodstream") -> None:
        if shutil.which("influxd") is None:
            missing("influxd is not installed (scripts/setup.sh --test installs it as root)")
        self.folder, self.database = folder, database
        self.port, rpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "influxdb.conf"
        self.config.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{folder}/meta"\n'
            f'[data]\n  dir = "{folder}/data"\n  wal-dir = "{folder}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            '[monitor]\n  store-enabled = false\n')
        self.log = folder / "influxd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(["influxd", "-config", str(self.config)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 204:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"influxd did not start:\n{self.log.read_text()[-2000:]}")
        self.query(f"CREATE DATABASE {self.database}", method="POST")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def query(self, q: str, method: str = "GET") -> dict:
        params = urllib.parse.urlencode({"db": self.database, "q": q, "epoch": "ns"})
        request = urllib.request.Request(f"{self.url}/query?{params}", method=method)
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def points(self, q: str) -> list[dict]:
        result = self.query(q)["results"][0]
        out = []
        for series in result.get("series", []):
            for values in series["values"]:
                out.append({**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))})
        return out
