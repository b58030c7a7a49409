"""The stack's monitoring config and dashboard against the real Prometheus (Debian's), scraping a real master and worker.

test_monitoring.py checks the files by reading them; here `promtool` parses monitoring/prometheus.yml, and a
Prometheus started on this machine with that file (the Swarm DNS discovery swapped for the two local metrics ports,
scraped every second) scrapes `python -m master` and `python -m worker` while questions are answered. Every
dashboard expression is then evaluated by Prometheus' own PromQL engine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.local_broker import RunningBroker, free_port, stop_process
from devstack.users import create_users
from tests.fault_helpers import (close_clients, connect_clients, master_env, start_service, stop_service, until,
                                 wait_ready, worker_env)
from tests.pki_helpers import Pki

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "ai-system.json"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                      reason="prometheus is not installed (scripts/test.sh installs it as root)")
# Counters of events the live test does not cause: their panels may be empty.
EVENT_SERIES = ("aisys_task_errors_total", "aisys_questions_refused_total", "aisys_tasks_requeued_total",
                "aisys_results_refused_total", "aisys_logins_failed_total", "aisys_model_errors_total",
                "aisys_model_retries_total", "aisys_gemini_key_reloads_total")
# Grafana's range variable, as Grafana would set it for a 1 s scrape interval (4 x the interval, at least 1 m).
RATE_INTERVAL = "1m"


def local_config(metrics_ports: dict[str, int], own_port: int) -> dict[str, Any]:
    """monitoring/prometheus.yml with each job's Swarm DNS discovery replaced by its local port (and Prometheus' own
    job by the port it listens on here), scraped every second."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    for job in config["scrape_configs"]:
        if job["job_name"] in metrics_ports:
            del job["dns_sd_configs"]
            job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_ports[job['job_name']]}"]}]
        elif job["job_name"] == "prometheus":
            assert job["static_configs"] == [{"targets": ["localhost:9090"]}]
            job["static_configs"] = [{"targets": [f"127.0.0.1:{own_port}"]}]
    return config


def query(port: int, expr: str) -> dict[str, Any]:
    """Prometheus' answer to an instant query (its JSON: status, data or errorType/error)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as err:  # 400 / 422: a bad expression, explained in the body
        with err:
            return dict(json.load(err))


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL))
            for panel in board["panels"] for target in panel.get("targets", [])]


def is_ready(port: int) -> bool:
    """Prometheus answers 200 on /-/ready (503 while it starts, refused before it listens)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as err:
        err.close()
        return False
    except urllib.error.URLError:
        return False


def scraped_up(port: int) -> dict[str, float]:
    """job -> the `up` value of its target (1 once a scrape succeeded)."""
    result = query(port, "up")["data"]["result"]
    return {r["metric"]["job"]: float(r["value"][1]) for r in result}


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    """Starts Prometheus on a free port with the config made for that port (its own data directory); stopped at
    teardown."""
    running: list[subprocess.Popen[bytes]] = []

    def start(config_for: Callable[[int], dict[str, Any]]) -> int:
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config_for(port)))
        log = open(tmp_path / "prometheus.log", "ab")  # noqa: SIM115 (closed with the process, below)
        with log:
            running.append(subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT))
        return port

    try:
        yield start
    finally:
        for proc in running:
            stop_process(proc, 10)


@needs_prometheus
def test_promtool_accepts_the_stack_config() -> None:
    """`promtool check config` on monitoring/prometheus.yml, the file the stack mounts: SUCCESS."""
    checked = subprocess.run([str(PROMTOOL), "check", "config", str(MONITORING / "prometheus.yml")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


@needs_prometheus
def test_promtool_refuses_a_broken_config(tmp_path: Path) -> None:
    """The check can fail: the same file with a scrape interval that is not a duration is refused."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "15 seconds"
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run([str(PROMTOOL), "check", "config", str(tmp_path / "broken.yml")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode != 0 and "FAILED" in checked.stdout + checked.stderr


@needs_prometheus
async def test_prometheus_scrapes_master_and_worker_and_every_panel_evaluates(
    pki: Pki, broker: RunningBroker, tmp_path: Path, prometheus_for: Any
) -> None:
    """Both jobs up, questions counted, and every dashboard expression accepted by Prometheus' PromQL engine."""
    web_port, grpc_port = free_port(), free_port()
    metrics = {"master": free_port(), "worker": free_port()}
    accounts = create_users(tmp_path / "master.db", [f"prom{web_port}"])
    master = start_service("master", master_env(pki, broker.port, web_port, grpc_port, tmp_path,
                                                METRICS_HOST="127.0.0.1", METRICS_PORT=str(metrics["master"])),
                           tmp_path / "master.log")
    worker = start_service("worker", worker_env(pki, broker.port, grpc_port, f"prom-{web_port}",
                                                METRICS_HOST="127.0.0.1", METRICS_PORT=str(metrics["worker"])),
                           tmp_path / "worker.log")
    try:
        url = f"https://localhost:{web_port}"
        await wait_ready(pki, url, workers=1)
        port = prometheus_for(lambda own: local_config(metrics, own))
        await until(lambda: is_ready(port), 30, "Prometheus to start")
        await until(lambda: scraped_up(port) == {"master": 1.0, "worker": 1.0, "prometheus": 1.0}, 30,
                    "Prometheus to scrape the master, the worker and itself")
        [client] = await connect_clients(pki, url, accounts)
        try:
            for i in range(3):
                assert "task_id" in await client.ask(f"question {i}")
                assert (await client.next_response())["event"] == "ai-response"
        finally:
            await close_clients([client])

        def answered() -> float:
            result = query(port, 'sum(aisys_tasks_total{job="master", outcome="answered"})')["data"]["result"]
            return float(result[0]["value"][1]) if result else 0.0

        await until(lambda: answered() == 3, 15, "the three answers in Prometheus")
        await asyncio.sleep(2)  # two more scrapes, so that rate() has samples on both sides of the answers
        verdicts = {f"{title}: {expr}": query(port, expr) for title, expr in dashboard_expressions()}
        assert len(verdicts) >= 20
        refused = {what: f"{v.get('errorType')}: {v.get('error')}" for what, v in verdicts.items()
                   if v.get("status") != "success"}
        assert refused == {}
        # A panel of events this run did not have (errors, refusals, retries, key reloads) has no series yet; every
        # other panel must show data: an empty one names a series or label that nothing exports.
        empty = sorted(what for what, v in verdicts.items()
                       if not v["data"]["result"] and not any(series in what for series in EVENT_SERIES))
        assert empty == []
    finally:
        for proc in (worker, master):
            stop_service(proc)


@needs_prometheus
async def test_prometheus_refuses_a_misspelt_expression(tmp_path: Path, prometheus_for: Any) -> None:
    """The evaluation can fail: a PromQL syntax error comes back as bad_data, not as an empty result."""
    port = prometheus_for(lambda own: local_config({}, own))
    await until(lambda: is_ready(port), 30, "Prometheus to start")
    verdict = query(port, "sum by (le (rate(aisys_task_latency_seconds_bucket[1m]))")
    assert verdict["status"] == "error" and verdict["errorType"] == "bad_data"
