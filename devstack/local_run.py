"""The whole system as local processes: mosquitto, the master and N workers on 127.0.0.1.

`python -m devstack.local_run --help`; scripts/run-local.sh is the wrapper the README names.
Everything it starts it stops by PID, on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.broker_config import REPO_ROOT
from devstack.local_broker import free_port, run_broker, stop_process
from devstack.users import DEMO_USER, ensure_demo_user
from common.tls import OPENSSL_CONF_FILE, TlsFiles, client_context

DEFAULT_RUN_DIR = REPO_ROOT / ".run"
DEFAULT_PKI_DIR = REPO_ROOT / "pki" / "out"


def database_file(run_dir: Path) -> Path:
    """The master's store in a local run (what scripts/users.sh uses by default)."""
    return run_dir / "master.db"


@dataclass
class LocalStack:
    url: str
    ca: Path
    web_port: int
    grpc_port: int
    mqtt_port: int
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker_pid: int = 0


def ensure_security_material(pki_dir: Path) -> Path:
    """Make the PKI and MQTT credentials on first run (no-op afterwards); returns the credentials dir."""
    from pki.credentials import ensure_credentials
    from pki.generate import generate

    generate(pki_dir)
    creds = pki_dir / "credentials"
    ensure_credentials(creds)
    return creds


def _service_env(common: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_FILE") and k not in ("WORKER_ID",)}
    env.update(common)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(name: str, module: str, env: dict[str, str], logs: Path, python: str) -> subprocess.Popen[bytes]:
    with open(logs / f"{name}.log", "ab") as log:
        return subprocess.Popen([python, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)


def wait_healthy(url: str, ca: Path, workers: int, procs: dict[str, subprocess.Popen[bytes]], logs: Path,
                 timeout: float = 30.0) -> None:
    """Poll /healthz until the master reports MQTT up and `workers` live workers."""
    ctx: ssl.SSLContext = client_context(TlsFiles(ca=ca))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{name} exited with code {proc.returncode}; its log ends:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/healthz", context=ctx, timeout=2) as resp:
                body = json.loads(resp.read())
                if body.get("mqtt") and body.get("workers", 0) >= workers:
                    return
                last = json.dumps(body)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"the stack did not become healthy within {timeout:.0f} s (last: {last}); logs in {logs}")


@contextlib.contextmanager
def run_local_stack(
    *,
    workers: int = 2,
    capacity: int = 4,
    web_port: int = 8443,
    grpc_port: int = 0,
    mqtt_port: int = 0,
    pki_dir: Path = DEFAULT_PKI_DIR,
    run_dir: Path = DEFAULT_RUN_DIR,
    gemini_key_file: Path | None = None,
    gemini_base_url: str | None = None,
    echo_latency_s: float = 0.0,
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
    master_python: str | None = None,
    worker_python: str | None = None,
) -> Iterator[LocalStack]:
    """Start mosquitto, the master and `workers` workers; yield when healthy; stop them all.

    `master_python` / `worker_python` run a service with another interpreter (e.g. a venv with
    only that service's runtime dependencies, as in its image); default: this one.
    """
    creds = ensure_security_material(pki_dir)
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    grpc_port = grpc_port or free_port()
    ca = pki_dir / "ca.crt"
    with run_broker(ca, pki_dir / "mosquitto.crt", pki_dir / "mosquitto.key", creds / "mosquitto_passwd",
                    port=mqtt_port or None, log_path=logs / "mosquitto.log") as broker:
        common = {
            "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "TLS_CA_FILE": str(ca),
            "LOG_LEVEL": log_level, **(extra_env or {}),
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            procs["master"] = _spawn("master", "master", _service_env(common, {
                "MQTT_PASSWORD_FILE": str(creds / "mqtt_master_password"),
                "TLS_CERT_FILE": str(pki_dir / "master.crt"), "TLS_KEY_FILE": str(pki_dir / "master.key"),
                "WEB_HOST": "127.0.0.1", "WEB_PORT": str(web_port), "DATABASE_FILE": str(database_file(run_dir)),
                "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(grpc_port),
                "PUBLIC_ORIGINS": f"https://localhost:{web_port},https://127.0.0.1:{web_port}",
                # TLS groups of the HTTPS listener (X25519, P-256, P-384): see common/tls.py.
                "OPENSSL_CONF": str(OPENSSL_CONF_FILE),
            }), logs, master_python or sys.executable)
            for i in range(workers):
                worker_env = {
                    "WORKER_ID": f"local-worker-{i + 1}", "CAPACITY": str(capacity),
                    "MQTT_PASSWORD_FILE": str(creds / "mqtt_worker_password"),
                    "TLS_CERT_FILE": str(pki_dir / "worker.crt"), "TLS_KEY_FILE": str(pki_dir / "worker.key"),
                    "RESULTS_ENDPOINT": f"127.0.0.1:{grpc_port}", "RESULTS_TLS_SERVER_NAME": "localhost",
                    "ECHO_LATENCY_S": str(echo_latency_s),
                }
                if gemini_key_file is not None:
                    worker_env["GEMINI_API_KEY_FILE"] = str(gemini_key_file)
                if gemini_base_url:
                    worker_env["GEMINI_BASE_URL"] = gemini_base_url
                procs[f"worker-{i + 1}"] = _spawn(
                    f"worker-{i + 1}", "worker", _service_env(common, worker_env), logs, worker_python or sys.executable
                )
            url = f"https://localhost:{web_port}"
            wait_healthy(url, ca, workers, procs, logs)
            yield LocalStack(url, ca, web_port, grpc_port, broker.port, logs, procs, broker.pid)
        finally:
            # Workers first (they say offline), then the master.
            for name in sorted(procs, key=lambda n: n == "master"):
                stop_process(procs[name], timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run-local.sh", description="Run mosquitto, the master and workers locally.")
    parser.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    parser.add_argument("--capacity", type=int, default=4, help="tasks per worker at once (default 4)")
    parser.add_argument("--web-port", type=int, default=8443, help="HTTPS port (default 8443)")
    parser.add_argument("--echo-latency", type=float, default=0.0, help="simulated seconds per echo answer")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    key_path = os.environ.get("GEMINI_API_KEY_FILE")
    key_file = Path(key_path) if key_path else None
    if key_file is not None and not key_file.is_file():
        print(f"run-local: error: GEMINI_API_KEY_FILE={key_file} is not a readable file: create it or unset it", file=sys.stderr)
        return 1
    stop = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    DEFAULT_RUN_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    demo_password = ensure_demo_user(database_file(DEFAULT_RUN_DIR))
    try:
        with run_local_stack(workers=args.workers, capacity=args.capacity, web_port=args.web_port,
                             gemini_key_file=key_file, echo_latency_s=args.echo_latency,
                             log_level=args.log_level) as stack:
            model = "Gemini (key from GEMINI_API_KEY_FILE)" if key_file else "the offline echo model (no GEMINI_API_KEY_FILE)"
            print(f"ai-system is running with {args.workers} workers using {model}.")
            print(f"  Open:        {stack.url}")
            if demo_password:
                print(f"  Log in:      user {DEMO_USER}, password {demo_password}  (shown once; "
                      f"change it: scripts/users.sh passwd {DEMO_USER})")
            else:
                print(f"  Log in:      user {DEMO_USER} (its password was shown at the first run; "
                      f"reset it: scripts/users.sh passwd {DEMO_USER}; more users: scripts/users.sh add NAME)")
            print(f"  Trust CA:    {stack.ca}  (import it into your browser, or: curl --cacert {stack.ca} {stack.url}/healthz)")
            print(f"  Logs:        {stack.logs}/")
            print("  Stop:        Ctrl-C", flush=True)
            while not stop["now"] and all(p.poll() is None for p in stack.processes.values()):
                time.sleep(0.2)
            dead = [n for n, p in stack.processes.items() if p.poll() is not None]
            if dead and not stop["now"]:
                print(f"run-local: error: {', '.join(dead)} stopped unexpectedly; see {stack.logs}/", file=sys.stderr)
                return 1
            print("Stopping...", flush=True)
    except RuntimeError as exc:
        print(f"run-local: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
