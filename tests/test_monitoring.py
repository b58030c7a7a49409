"""The monitoring in the stack: Prometheus scrapes the ports the services serve, the dashboard asks only for real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from master import metrics as master_metrics
from worker import metrics as worker_metrics

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "ai-system.json"
# Series Prometheus makes itself for each target, and the target labels it adds to every series.
SCRAPER_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}
PROMQL_FUNCTIONS = {"sum", "rate", "increase", "histogram_quantile", "count", "avg", "max", "min", "irate", "clamp_min"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created", ""), "info": ("_info",), "untyped": ("",)}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return yaml.safe_load((REPO / "stack.yml").read_text())


def exported_series() -> dict[str, set[str]]:
    """Every series name the master's and workers' registries can export (the metrics modules are imported), with its labels."""
    labels_of = {m._name: set(m._labelnames)  # noqa: SLF001  (the declared labels; a labelled metric has no sample yet)
                 for module in (master_metrics, worker_metrics) for m in vars(module).values()
                 if isinstance(m, MetricWrapperBase)}
    series: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        declared = labels_of.get(family.name, set()) | {k for s in family.samples for k in s.labels}
        for suffix in SUFFIXES[family.type]:
            series[family.name + suffix] = declared | ({"le"} if suffix == "_bucket" else set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def expression_problems(expr: str, series: dict[str, set[str]]) -> list[str]:
    """What in one PromQL expression names a series or label that nothing exports (empty: all real)."""
    problems = []
    text = re.sub(r'"[^"]*"', '""', expr)
    grouped = [label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text)
               for label in group.split(",") if label.strip()]
    text = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", text)
    matchers = [m for group in re.findall(r"\{([^}]*)\}", text) for m in re.findall(r"([A-Za-z_]\w*)\s*[=!]", group)]
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    used: list[str] = []
    for match in IDENT.finditer(text):
        name = match.group()
        if text[match.end():].lstrip().startswith("("):
            if name not in PROMQL_FUNCTIONS:
                problems.append(f"unknown function {name}")
        elif name in PROMQL_KEYWORDS:
            continue
        elif name in series or name in SCRAPER_SERIES:
            used.append(name)
        else:
            problems.append(f"no such series {name}")
    known_labels = TARGET_LABELS.union(*(series.get(n, set()) for n in used))
    problems += [f"no such label {label} on {used}" for label in grouped + matchers if label not in known_labels]
    return problems


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel.get("targets", [])]


def test_dashboard_asks_only_for_exported_series_and_labels() -> None:
    """Every series and label a dashboard expression names is one the master or a worker exports (or Prometheus adds)."""
    series = exported_series()
    exprs = dashboard_expressions()
    assert len(exprs) >= 20
    problems = {f"{title}: {expr}": p for title, expr in exprs if (p := expression_problems(expr, series))}
    assert problems == {}


@pytest.mark.parametrize("expr, problem", [
    ("sum(aisys_queue_lenght)", "no such series aisys_queue_lenght"),
    ("sum by (code) (rate(aisys_task_error_total[5m]))", "no such series aisys_task_error_total"),
    ("sum by (user) (rate(aisys_tasks_total[5m]))", "no such label user"),
    ("rate(proces_cpu_seconds_total[5m])", "no such series proces_cpu_seconds_total"),
    ("histogram_quantile(0.5, sum by (le) (rate(aisys_task_latency_seconds[5m])))", "no such series aisys_task_latency_seconds"),
])
def test_dashboard_check_catches(expr: str, problem: str) -> None:
    """The check can fail: a misspelt series, a counter without _total, a label nobody exports, a histogram without _bucket."""
    assert any(p.startswith(problem) for p in expression_problems(expr, exported_series()))


def test_dashboard_covers_the_operators_view() -> None:
    """Queue, throughput, latency percentiles, errors by code, workers by state, CPU and memory from process_* metrics."""
    text = " ".join(f"{title} || {expr}" for title, expr in dashboard_expressions())
    for needle in ("aisys_queue_length", "rate(aisys_tasks_total", "histogram_quantile(0.99, sum by (le) "
                   "(rate(aisys_task_latency_seconds_bucket", "sum by (code) (rate(aisys_task_errors_total",
                   "sum by (state) (aisys_workers)", "process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert needle in text, needle


def test_dashboard_and_datasource_agree() -> None:
    """Every panel queries the provisioned data source (by uid), which points at the stack's prometheus service."""
    source = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert [(s["uid"], s["type"], s["url"]) for s in source] == [("aisys-prometheus", "prometheus", "http://prometheus:9090")]
    board = json.loads(DASHBOARD.read_text())
    refs = {json.dumps(p["datasource"], sort_keys=True) for p in board["panels"] if "datasource" in p}
    assert refs == {json.dumps({"type": "prometheus", "uid": "aisys-prometheus"}, sort_keys=True)}


def test_scrape_targets_are_every_replica_on_its_metrics_port(stack: dict[str, Any]) -> None:
    """Prometheus finds the master and every worker replica by Swarm DNS (tasks.<service>) on the METRICS_PORT stack.yml sets."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in ("master", "worker"):
        sd = jobs[service]["dns_sd_configs"]
        assert [(d["names"], d["type"], str(d["port"])) for d in sd] == [
            ([f"tasks.{service}"], "A", stack["services"][service]["environment"]["METRICS_PORT"])]
        assert "static_configs" not in jobs[service]


def test_stack_mounts_the_monitoring_files_where_they_are_read(stack: dict[str, Any]) -> None:
    """Each monitoring config in stack.yml is a file in the repository, mounted where Prometheus or Grafana reads it."""
    configs = stack["configs"]
    mounts = {c["source"]: c["target"] for name in ("prometheus", "grafana") for c in stack["services"][name]["configs"]}
    for source, target in mounts.items():
        assert (REPO / configs[source]["file"]).is_file(), source
    assert mounts["prometheus_conf"] in stack["services"]["prometheus"]["command"][0]
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/ai-system.yml").read_text())["providers"][0]
    assert mounts["grafana_dashboard_ai_system"] == f"{provider['options']['path']}/{DASHBOARD.name}"
    assert all(t.startswith(stack["services"]["grafana"]["environment"]["GF_PATHS_PROVISIONING"])
               for s, t in mounts.items() if s in ("grafana_datasource", "grafana_dashboards"))


def test_grafana_password_is_a_secret_file(stack: dict[str, Any]) -> None:
    """Grafana's admin password comes from the grafana_admin_password secret through GF_SECURITY_ADMIN_PASSWORD__FILE."""
    grafana = stack["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert [s["source"] for s in grafana["secrets"]] == ["grafana_admin_password"]
