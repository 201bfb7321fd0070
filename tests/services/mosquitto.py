"""A real Mosquitto broker for tests: its own config, a free port, password file and TLS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def missing(message: str) -> None:
    """Skip on a developer's machine; fail in CI, where scripts/setup.sh --test installs the service."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=moodstream-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return {"ca": ca, "cert": cert, "key": key}


class Mosquitto:
    def __init__(self, folder: Path, username: str, password: str, tls: bool = True) -> None:
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            missing("mosquitto is not installed (scripts/setup.sh --test installs it as root)")
        self.folder, self.port = folder, free_port()
        self.tls = make_tls(folder) if tls else None
        passwd = folder / "passwd"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), username, password], check=True)
        (folder / "data").mkdir(exist_ok=True)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            "user root\n"  # started as root, keep root: the test's files stay private
            f"listener {self.port} 127.0.0.1\n"
            + (f"cafile {self.tls['ca']}\ncertfile {self.tls['cert']}\nkeyfile {self.tls['key']}\n" if tls else "")
            +
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            "persistence true\n"
            f"persistence_location {folder / 'data'}/\n"
            "autosave_interval 1\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.proc: subprocess.Popen | None = None
        self.log = folder / "mosquitto.log"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with self.log.open("a") as out:
            self.proc = subprocess.Popen([binary, "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # saves its persistence database
            self.proc.wait(timeout=10)
        self.proc = None
