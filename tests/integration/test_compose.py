"""docker/compose.yaml validates (docker-compose, no engine needed) and its commands are real."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from services.mosquitto import free_port, make_tls, missing

from moodstream.cli import build_parser


@pytest.fixture(scope="module")
def compose(repo_root):
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing in CI: scripts/setup.sh --test should have installed it")
        pytest.skip("docker-compose is not installed (scripts/setup.sh --test installs it as root)")
    return repo_root / "docker" / "compose.yaml"


def filled_env(compose, folder) -> Path:
    """docker/.env.example with every password set, as a user's docker/.env."""
    lines = [line + "a-test-password" if ("PASSWORD=" in line or "PURPOSE=" in line) and not line.startswith("#")
             else line for line in (compose.parent / ".env.example").read_text().splitlines()]
    env = folder / ".env"
    env.write_text("\n".join(lines) + "\n")
    return env


def compose_config(compose, env: Path, *profile: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "-f", str(compose), "--env-file", str(env), *profile, "config"],
                          capture_output=True, text=True)


def resolved(compose, *profile: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = compose_config(compose, filled_env(compose, Path(folder)), *profile)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["services"]


def test_compose_refuses_empty_passwords(compose, tmp_path):
    """Issue 13, D9: the example's empty passwords stop `docker compose up` with the variable's name."""
    out = compose_config(compose, compose.parent / ".env.example")
    assert out.returncode != 0
    assert "PASSWORD in docker/.env" in out.stderr, out.stderr
    for variable in ("MQTT_PASSWORD", "NODE_RED_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
                     "INFLUXDB_ADMIN_PASSWORD", "INFLUXDB_WRITE_USER_PASSWORD", "INFLUXDB_READ_USER_PASSWORD"):
        env = filled_env(compose, tmp_path)
        env.write_text(env.read_text().replace(f"\n{variable}=a-test-password", f"\n{variable}="))
        out = compose_config(compose, env)
        assert out.returncode != 0 and f"set {variable} in docker/.env" in out.stderr, (variable, out.stderr)


def test_compose_file_validates(compose):
    services = resolved(compose, "--profile", "robot")
    assert set(services) == {"mosquitto", "influxdb", "node-red", "grafana", "api", "pipeline"}
    assert services["pipeline"]["profiles"] == ["robot"]  # started only on a robot, with --profile robot


def test_services_run_real_moodstream_commands(compose, repo_root):
    services = resolved(compose, "--profile", "robot")
    for name in ("api", "pipeline"):
        command = services[name]["command"]
        args = build_parser().parse_args(command)  # argparse exits on anything it does not accept
        assert args.command == command[0], name
    pipeline = build_parser().parse_args(services["pipeline"]["command"])
    assert pipeline.mqtt == "mqtt://mosquitto:1883"
    assert "policy.purpose=a-test-password" in pipeline.param  # the purpose from docker/.env, required
    assert "MOODSTREAM_MQTT_PASSWORD" in services["pipeline"]["environment"]  # credentials from the environment


def test_stack_files_exist_and_no_secret_is_committed(compose, repo_root):
    services = yaml.safe_load(compose.read_text())["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose.parent / source).exists(), source
    node_red = (repo_root / "docker" / "node-red" / "Dockerfile").read_text()
    for name in ("flows.json", "flows_cred.json", "settings.js"):
        assert name in node_red and (repo_root / "docker" / "node-red" / name).exists()
    example = (compose.parent / ".env.example").read_text()
    for line in example.splitlines():
        if "PASSWORD" in line and not line.startswith("#"):
            assert line.endswith("="), f"{line!r}: the example must leave passwords empty"
    assert "docker/.env" in (repo_root / ".gitignore").read_text().splitlines()
    dockerfile = (repo_root / "docker" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (repo_root / source).exists(), f"Dockerfile copies missing {source}"
    api_port = services["api"]["ports"][0]
    assert api_port.startswith("${MOODSTREAM_API_BIND:-127.0.0.1}")  # loopback unless the user says otherwise


def test_the_node_red_editor_gets_its_login_and_the_broker_its_tls_port(compose):
    services = resolved(compose)
    assert "NODE_RED_ADMIN_PASSWORD" in services["node-red"]["environment"]
    ports = {(p["published"], p["target"], p.get("host_ip")) if isinstance(p, dict) else p
             for p in services["mosquitto"]["ports"]}
    assert any("8883" in str(p) for p in ports), ports
    assert any(v.startswith("./mosquitto/certs:") or "mosquitto/certs" in str(v)
               for v in services["mosquitto"]["volumes"]), services["mosquitto"]["volumes"]


def run_entrypoint(repo_root, folder: Path, password: str, certs: dict | None = None) -> tuple[subprocess.Popen, dict]:
    """docker/mosquitto/entrypoint.sh as the container runs it, with this machine's mosquitto
    and the paths and ports moved into ``folder`` (the variables the script documents)."""
    certs_dir = folder / "certs"
    certs_dir.mkdir()
    for name, source in (certs or {}).items():
        shutil.copy(source, certs_dir / name)
    ports = {"plain": free_port(), "tls": free_port()}
    env = {**os.environ, "PATH": f"/usr/sbin:{os.environ['PATH']}", "MQTT_USERNAME": "robot",
           "MQTT_PASSWORD": password, "MQTT_TEMPLATE": str(repo_root / "docker" / "mosquitto" / "mosquitto.conf"),
           "MQTT_CONFIG_DIR": str(folder / "config"), "MQTT_DATA_DIR": str(folder / "data"),
           "MQTT_CERTS_DIR": str(certs_dir), "MQTT_RUN_AS": "root", "MQTT_LISTEN_ADDRESS": "127.0.0.1",
           "MQTT_LISTEN_PORT": str(ports["plain"]), "MQTTS_LISTEN_PORT": str(ports["tls"])}
    proc = subprocess.Popen(["sh", str(repo_root / "docker" / "mosquitto" / "entrypoint.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, ports


def mqtt_round_trip(port: int, password: str, ca: Path | None = None) -> bool:
    import paho.mqtt.client as mqtt

    got = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"entrypoint-test-{port}")
    client.username_pw_set("robot", password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca))
    client.on_message = lambda c, u, m: got.append(m.payload)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.connect("127.0.0.1", port)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    client.loop_start()
    try:
        client.subscribe("t", qos=1)
        time.sleep(0.3)
        client.publish("t", b"hello", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        return got == [b"hello"]
    finally:
        client.loop_stop()
        client.disconnect()


def test_broker_entrypoint_adds_a_tls_listener_when_given_a_certificate(repo_root, tmp_path):
    """Issue 13, D9: the stack's broker, from its own entrypoint and config, with a certificate in
    docker/mosquitto/certs: TLS on one port, the password on both."""
    if shutil.which("mosquitto_passwd") is None or shutil.which("openssl") is None:
        missing("mosquitto and openssl are needed (scripts/setup.sh --test installs them as root)")
    (tmp_path / "pki").mkdir()
    tls = make_tls(tmp_path / "pki")
    (tmp_path / "broker").mkdir()
    password = "a-long-broker-password"
    proc, ports = run_entrypoint(repo_root, tmp_path / "broker", password,
                                 {"server.crt": tls["cert"], "server.key": tls["key"], "ca.crt": tls["ca"]})
    try:
        assert mqtt_round_trip(ports["tls"], password, ca=tls["ca"])
        assert mqtt_round_trip(ports["plain"], password)
        (tmp_path / "other").mkdir()
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that trusts another CA gets no connection
            mqtt_round_trip(ports["tls"], password, ca=make_tls(tmp_path / "other")["ca"])
        config = (tmp_path / "broker" / "config" / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in config and f"listener {ports['tls']} 127.0.0.1" in config
        assert oct((tmp_path / "broker" / "config" / "certs" / "server.key").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "TLS listener on port" in out


@pytest.mark.parametrize(("password", "certs", "message"), [
    ("short", {}, "MQTT_PASSWORD is shorter than 8 characters"),
    ("", {}, "set MQTT_PASSWORD in docker/.env"),
    ("a-long-broker-password", {"server.crt": "cert"}, "server.key is missing or unreadable"),
])
def test_broker_entrypoint_refuses_what_would_run_insecurely(repo_root, tmp_path, password, certs, message):
    if shutil.which("mosquitto_passwd") is None or shutil.which("openssl") is None:
        missing("mosquitto and openssl are needed (scripts/setup.sh --test installs them as root)")
    if certs:
        (tmp_path / "pki").mkdir()
        certs = {name: make_tls(tmp_path / "pki")[kind] for name, kind in certs.items()}
    (tmp_path / "broker").mkdir()
    proc, _ = run_entrypoint(repo_root, tmp_path / "broker", password, certs)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0 and message in out, out
