"""The whole system as local processes: mosquitto, the master and N workers on 127.0.0.1.

`python -m devstack.local_run --help`; scripts/run-local.sh is the wrapper the README names.
The launcher supervises: a child that exits is restarted with back-off (devstack/supervisor.py).
Everything it starts it stops by PID, on exit, Ctrl-C, SIGTERM or SIGHUP: workers, master, mosquitto.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.broker_config import REPO_ROOT
from devstack.local_broker import (
    broker_temp_dir, free_port, prepare_broker, start_broker_process, wait_for_broker,
)
from devstack.supervisor import BackOff, Supervisor
from devstack.users import DEMO_USER, ensure_demo_user
from common.logsetup import configure_logging
from common.tls import OPENSSL_CONF_FILE, TlsFiles, client_context

DEFAULT_RUN_DIR = REPO_ROOT / ".run"
DEFAULT_PKI_DIR = REPO_ROOT / "pki" / "out"


def database_file(run_dir: Path) -> Path:
    """The master's store in a local run (what scripts/users.sh uses by default)."""
    return run_dir / "master.db"


def state_file(run_dir: Path) -> Path:
    """`<run_dir>/processes.json`: the launcher's PID, each child's current PID and the ports (rewritten on restart)."""
    return run_dir / "processes.json"


def metrics_targets_file(run_dir: Path) -> Path:
    """`<run_dir>/metrics-targets.json`: every /metrics endpoint, in Prometheus' file_sd format (README "Metrics")."""
    return run_dir / "metrics-targets.json"


def _write_metrics_targets(path: Path, ports: dict[str, int]) -> None:
    groups = [{"targets": [f"127.0.0.1:{port}"], "labels": {"job": name.split("-")[0], "process": name}}
              for name, port in ports.items()]
    path.write_text(json.dumps(groups, indent=1) + "\n")


@dataclass
class LocalStack:
    url: str
    ca: Path
    web_port: int
    grpc_port: int
    mqtt_port: int
    logs: Path
    supervisor: Supervisor
    # Each process's /metrics (plain HTTP on 127.0.0.1, a port of its own), by process name.
    metrics: dict[str, str] = field(default_factory=dict)

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Every child by name (mosquitto, master, worker-N), as they run now (a restart replaces one)."""
        return self.supervisor.processes

    @property
    def broker_pid(self) -> int:
        return self.supervisor.processes["mosquitto"].pid


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


def _spawner(name: str, module: str, env: dict[str, str], logs: Path, python: str) -> Callable[[], subprocess.Popen[bytes]]:
    """Starts `python -m module` with `env`, output appended to `<logs>/<name>.log`, in its own process group.

    Its own group: Ctrl-C in the terminal reaches only the launcher, which stops the children in order.
    """
    def start() -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "ab") as log:
            return subprocess.Popen([python, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=REPO_ROOT, process_group=0)
    return start


def _write_state(path: Path, ports: dict[str, int], supervisor: Supervisor) -> None:
    state = {"launcher": os.getpid(), "ports": ports,
             "processes": {name: proc.pid for name, proc in supervisor.processes.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, path)


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
    supervise: bool = False,
    backoff: BackOff = BackOff(),
) -> Iterator[LocalStack]:
    """Start mosquitto, the master and `workers` workers; yield when healthy; stop them all.

    `master_python` / `worker_python` run a service with another interpreter (e.g. a venv with
    only that service's runtime dependencies, as in its image); default: this one.
    With `supervise` (the launcher's mode), a child that exits after start-up is restarted with
    back-off (devstack/supervisor.py); without it (tests, the benchmark) it stays down. A child that
    exits during start-up fails the start either way, with the end of its log.
    """
    creds = ensure_security_material(pki_dir)
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    grpc_port = grpc_port or free_port()
    ca = pki_dir / "ca.crt"
    broker_dir = broker_temp_dir()
    ports = {"web": web_port, "grpc": grpc_port}
    # /metrics of each process on a free port of its own (the same port again after a restart).
    metrics_ports = {name: free_port() for name in ["master", *(f"worker-{i + 1}" for i in range(workers))]}
    ports.update({f"metrics-{name}": port for name, port in metrics_ports.items()})
    _write_metrics_targets(metrics_targets_file(run_dir), metrics_ports)
    supervisor = Supervisor(backoff, on_start=lambda sup: _write_state(state_file(run_dir), ports, sup))
    try:
        broker = prepare_broker(ca, pki_dir / "mosquitto.crt", pki_dir / "mosquitto.key", creds / "mosquitto_passwd",
                                broker_dir, port=mqtt_port or None, log_path=logs / "mosquitto.log")
        ports["mqtt"] = broker.port
        wait_for_broker(broker, supervisor.add("mosquitto", lambda: start_broker_process(broker),
                                               log_path=broker.log_path, stop_timeout=5))
        common = {
            "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "TLS_CA_FILE": str(ca),
            "LOG_LEVEL": log_level, "METRICS_HOST": "127.0.0.1", **(extra_env or {}),
        }
        supervisor.add("master", _spawner("master", "master", _service_env(common, {
            "MQTT_PASSWORD_FILE": str(creds / "mqtt_master_password"),
            "TLS_CERT_FILE": str(pki_dir / "master.crt"), "TLS_KEY_FILE": str(pki_dir / "master.key"),
            "WEB_HOST": "127.0.0.1", "WEB_PORT": str(web_port), "DATABASE_FILE": str(database_file(run_dir)),
            "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(grpc_port),
            "PUBLIC_ORIGINS": f"https://localhost:{web_port},https://127.0.0.1:{web_port}",
            # TLS groups of the HTTPS listener (X25519, P-256, P-384): see common/tls.py.
            "OPENSSL_CONF": str(OPENSSL_CONF_FILE),
            "METRICS_PORT": str(metrics_ports["master"]),
        }), logs, master_python or sys.executable), log_path=logs / "master.log")
        for i in range(workers):
            worker_env = {
                "WORKER_ID": f"local-worker-{i + 1}", "CAPACITY": str(capacity),
                "MQTT_PASSWORD_FILE": str(creds / "mqtt_worker_password"),
                "TLS_CERT_FILE": str(pki_dir / "worker.crt"), "TLS_KEY_FILE": str(pki_dir / "worker.key"),
                "RESULTS_ENDPOINT": f"127.0.0.1:{grpc_port}", "RESULTS_TLS_SERVER_NAME": "localhost",
                "ECHO_LATENCY_S": str(echo_latency_s), "METRICS_PORT": str(metrics_ports[f"worker-{i + 1}"]),
            }
            if gemini_key_file is not None:
                worker_env["GEMINI_API_KEY_FILE"] = str(gemini_key_file)
            if gemini_base_url:
                worker_env["GEMINI_BASE_URL"] = gemini_base_url
            name = f"worker-{i + 1}"
            supervisor.add(name, _spawner(name, "worker", _service_env(common, worker_env), logs,
                                          worker_python or sys.executable), log_path=logs / f"{name}.log")
        url = f"https://localhost:{web_port}"
        wait_healthy(url, ca, workers, supervisor.processes, logs)
        if supervise:
            supervisor.watch()
        metrics = {name: f"http://127.0.0.1:{port}/metrics" for name, port in metrics_ports.items()}
        yield LocalStack(url, ca, web_port, grpc_port, broker.port, logs, supervisor, metrics)
    finally:
        # Supervision ends first; then workers (they say offline), the master, mosquitto, each by PID.
        supervisor.stop()
        shutil.rmtree(broker_dir, ignore_errors=True)
        state_file(run_dir).unlink(missing_ok=True)
        metrics_targets_file(run_dir).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run-local.sh", description="Run mosquitto, the master and workers locally.")
    parser.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    parser.add_argument("--capacity", type=int, default=4, help="tasks per worker at once (default 4)")
    parser.add_argument("--web-port", type=int, default=8443, help="HTTPS port (default 8443)")
    parser.add_argument("--echo-latency", type=float, default=0.0, help="simulated seconds per echo answer")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                        help="logs, the store and processes.json (default .run/)")
    parser.add_argument("--pki-dir", type=Path, default=DEFAULT_PKI_DIR,
                        help="the PKI and MQTT credentials, made there on first run (default pki/out/)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    key_path = os.environ.get("GEMINI_API_KEY_FILE")
    key_file = Path(key_path) if key_path else None
    if key_file is not None and not key_file.is_file():
        print(f"run-local: error: GEMINI_API_KEY_FILE={key_file} is not a readable file: create it or unset it", file=sys.stderr)
        return 1
    # The supervisor's lines (a child exited, restarted) go to this terminal's stderr, in the services' format.
    configure_logging("run-local", "INFO")
    state = {"stop": False, "starting": True}

    def request_stop(signum: int, frame: object) -> None:
        state["stop"] = True
        if state["starting"]:  # interrupt the start-up wait; the stack's `finally` stops what started
            state["starting"] = False
            raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    run_dir: Path = args.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    demo_password = ensure_demo_user(database_file(run_dir))
    try:
        with run_local_stack(workers=args.workers, capacity=args.capacity, web_port=args.web_port,
                             pki_dir=args.pki_dir.resolve(), run_dir=run_dir, gemini_key_file=key_file,
                             echo_latency_s=args.echo_latency, log_level=args.log_level, supervise=True) as stack:
            state["starting"] = False
            if state["stop"]:
                raise KeyboardInterrupt
            model = "Gemini (key from GEMINI_API_KEY_FILE)" if key_file else "the offline echo model (no GEMINI_API_KEY_FILE)"
            print(f"ai-system is running with {args.workers} workers using {model}.")
            print(f"  Open:        {stack.url}")
            if demo_password:
                print(f"  Log in:      user {DEMO_USER}, password {demo_password}  (shown once; "
                      f"change it: scripts/users.sh passwd {DEMO_USER})")
            else:
                print(f"  Log in:      user {DEMO_USER} (its password was shown at the first run; "
                      f"reset it: scripts/users.sh passwd {DEMO_USER}; more users: scripts/users.sh add NAME)")
            print(f"  Admin page:  {stack.url}/admin  (admins only: scripts/users.sh role {DEMO_USER} admin)")
            print(f"  API tokens:  {stack.url}/tokens  (personal tokens for the REST API, {stack.url}/api/docs)")
            for name, metrics_url in stack.metrics.items():
                print(f"  Metrics:     {name:<9} {metrics_url}")
            print(f"  Scrape them: {metrics_targets_file(run_dir)}  (Prometheus file_sd targets)")
            print(f"  Trust CA:    {stack.ca}  (import it into your browser, or: curl --cacert {stack.ca} {stack.url}/healthz)")
            print(f"  Logs:        {stack.logs}/  (a process that exits is restarted; the line saying so is printed here)")
            print("  Stop:        Ctrl-C", flush=True)
            while not state["stop"]:
                time.sleep(0.2)
            print("Stopping...", flush=True)
    except RuntimeError as exc:
        print(f"run-local: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
