"""A real Node-RED running MoodStream's docker/node-red/flows.json (installed from npm by
scripts/setup.sh --test into docker/node-red/node_modules)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .mosquitto import free_port, missing

ROOT = Path(__file__).resolve().parents[2]
NODE_RED = ROOT / "docker" / "node-red" / "node_modules" / ".bin" / "node-red"


ADMIN_USER, ADMIN_PASSWORD = "admin", "node-red-test-admin"


class NodeRed:
    """Started with the admin login of docker/.env (NODE_RED_ADMIN_USER / _PASSWORD) unless ``env``
    overrides it; :meth:`token` logs in as the editor does."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        if not NODE_RED.exists() or shutil.which("node") is None:
            missing("Node-RED is not installed (scripts/setup.sh --test installs it with npm)")
        self.folder, self.port = folder, free_port()
        self.user_dir = folder / "node-red"
        self.user_dir.mkdir()
        self.flows = self.user_dir / "flows.json"
        for name in ("flows.json", "flows_cred.json", "settings.js"):
            shutil.copy(ROOT / "docker" / "node-red" / name, self.user_dir / name)
        self.env = {**os.environ, "NODE_RED_ADMIN_USER": ADMIN_USER, "NODE_RED_ADMIN_PASSWORD": ADMIN_PASSWORD, **env}
        self.log = folder / "node-red.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_for: str = "Connected to broker") -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen([str(NODE_RED), "--userDir", str(self.user_dir), "--settings",
                                          str(self.user_dir / "settings.js"), "-p", str(self.port), str(self.flows)],
                                         stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if wait_for in self.log.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"Node-RED did not report {wait_for!r}:\n{self.log.read_text()[-3000:]}")

    def token(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> str:
        """An access token from the admin API's login (raises HTTPError 403 when refused)."""
        form = urllib.parse.urlencode({"client_id": "node-red-admin", "grant_type": "password", "scope": "*",
                                       "username": username, "password": password}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/auth/token", data=form, timeout=5) as r:
            return json.loads(r.read())["access_token"]

    def admin_get(self, path: str, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())

    def context(self, node_id: str, key: str):
        data = self.admin_get(f"/context/node/{node_id}/{key}", self.token())
        return data.get("memory", data).get("msg") if isinstance(data, dict) else data

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None
