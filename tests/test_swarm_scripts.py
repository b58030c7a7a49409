"""The Swarm operations scripts, run against a fake `docker` on PATH that records its arguments."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Pki, make_pki
from tests.stack_policy import stack_secret_table

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "https://chat.example.org"
SECRETS = [
    "ca_crt", "master_crt", "master_key", "mosquitto_crt", "mosquitto_key", "worker_crt", "worker_key",
    "mqtt_master_password", "mqtt_worker_password", "mosquitto_passwd", "session_secret", "initial_admin_password",
    "gemini_api_key", "grafana_admin_password",
]


@dataclass
class FakeDocker:
    dir: Path
    pki: Pki
    key_file: Path

    @property
    def log(self) -> Path:
        return self.dir / "calls.jsonl"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def args(self) -> list[list[str]]:
        return [c["args"] for c in self.calls()]  # type: ignore[misc]

    def secrets(self) -> dict[str, str]:
        return json.loads(self.state.read_text())["secrets"] if self.state.exists() else {}

    def run_bash(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run bash code (e.g. a swarm-lib.sh function) in the same environment as the scripts."""
        return subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=self.env(), cwd=REPO, timeout=60)

    def deploy(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("deploy.sh", "--public-origin", ORIGIN, *args, env=env)

    def reset_log(self) -> None:
        self.log.unlink(missing_ok=True)

    def env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.dir / 'bin'}:{os.environ['PATH']}",
            "FAKE_DOCKER_LOG": str(self.log), "FAKE_DOCKER_STATE": str(self.state),
            "PKI_DIR": str(self.pki.out), "CREDS_DIR": str(self.pki.creds),
            "GEMINI_API_KEY_FILE": str(self.key_file), "AISYS_PYTHON": sys.executable, "ROLLOUT_TIMEOUT_S": "3",
            **(env or {}),
        }

    def run(self, script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(REPO / "scripts" / script), *args], capture_output=True, text=True,
                              env=self.env(env), timeout=60)


@pytest.fixture
def docker(tmp_path: Path) -> FakeDocker:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests' / 'fake_docker.py'} \"$@\"\n")
    (bin_dir / "docker").chmod(0o755)
    pki = make_pki(tmp_path)
    key_file = tmp_path / "gemini_api_key"
    key_file.write_text("test-key-not-real-0123456789\n")
    return FakeDocker(tmp_path, pki, key_file)


def test_deploy_creates_every_missing_secret_once_then_deploys(docker: FakeDocker) -> None:
    result = docker.deploy()
    assert result.returncode == 0, result.stderr
    creates = [a for a in docker.args() if a[:2] == ["secret", "create"]]
    assert [a[2] for a in creates] == [f"{s}_v1" for s in SECRETS]
    assert creates[SECRETS.index("master_key")][3] == str(docker.pki.key("master"))
    assert creates[SECRETS.index("gemini_api_key")][3] == str(docker.key_file)
    deploy = [c for c in docker.calls() if c["args"][:2] == ["stack", "deploy"]]  # type: ignore[index]
    assert deploy[0]["args"] == ["stack", "deploy", "--prune", "-c", "stack.yml", "ai-system"]
    assert deploy[0]["secret_env"]["GEMINI_API_KEY_SECRET"] == "gemini_api_key_v1"  # type: ignore[index]
    assert "ca.key" not in json.dumps(docker.calls())  # the CA key goes into no secret


def test_deploy_names_each_config_after_its_content(docker: FakeDocker) -> None:
    """Every config stack.yml names gets a version from its file's SHA-256 (a changed ACL is a new config)."""
    assert docker.deploy().returncode == 0
    [deploy] = [c for c in docker.calls() if c["args"][:2] == ["stack", "deploy"]]
    versions = deploy["version_env"]  # type: ignore[index]
    stack = (REPO / "stack.yml").read_text()
    named = set(re.findall(r"\$\{([A-Z_]+_VERSION):-v1\}", stack))
    assert named and named <= set(versions), named - set(versions)
    acl = hashlib.sha256((REPO / "mosquitto" / "acl").read_bytes()).hexdigest()[:12]
    assert versions["MOSQUITTO_ACL_VERSION"] == acl


def test_deploy_rerun_creates_nothing(docker: FakeDocker) -> None:
    assert docker.deploy().returncode == 0
    docker.reset_log()
    result = docker.deploy()
    assert result.returncode == 0, result.stderr
    assert [a for a in docker.args() if a[:2] == ["secret", "create"]] == []
    assert any(a[:2] == ["stack", "deploy"] for a in docker.args())


def test_deploy_without_gemini_key_file_says_how_to_fix(docker: FakeDocker) -> None:
    result = docker.deploy(env={"GEMINI_API_KEY_FILE": ""})
    assert result.returncode == 1
    assert "GEMINI_API_KEY_FILE is not set" in result.stderr
    assert not any(a[:2] == ["stack", "deploy"] for a in docker.args())


def test_deploy_makes_a_missing_grafana_password_then_its_secret(docker: FakeDocker) -> None:
    """Credentials made before Grafana joined the stack: deploy.sh adds its password file (0600) and secret, changing no other file."""
    path = docker.pki.creds / "grafana_admin_password"
    path.unlink()
    before = {p.name: p.read_bytes() for p in docker.pki.creds.iterdir()}
    result = docker.deploy()
    assert result.returncode == 0, result.stderr
    password = path.read_text().strip()
    assert len(password) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ["secret", "create", "grafana_admin_password_v1", str(path)] in docker.args()
    assert {p.name: p.read_bytes() for p in docker.pki.creds.iterdir() if p.name != path.name} == before
    assert password not in result.stdout + result.stderr


def test_deploy_refuses_without_a_swarm(docker: FakeDocker) -> None:
    result = docker.deploy(env={"FAKE_DOCKER_SWARM": "inactive"})
    assert result.returncode == 1 and "docker swarm init" in result.stderr
    assert docker.secrets() == {}


def test_rotate_secret_swaps_gemini_key_with_constant_target(docker: FakeDocker, tmp_path: Path) -> None:
    assert docker.deploy().returncode == 0
    docker.reset_log()
    new_key = tmp_path / "new_key"
    new_key.write_text("rotated-key-not-real-0123456789\n")
    result = docker.run("rotate-secret.sh", str(new_key))
    assert result.returncode == 0, result.stderr
    args = docker.args()
    assert ["secret", "create", "gemini_api_key_v2", str(new_key)] in args
    assert [
        "service", "update", "--detach", "--secret-rm", "gemini_api_key_v1",
        "--secret-add", "source=gemini_api_key_v2,target=gemini_api_key,uid=10001,gid=10001,mode=0400",
        "ai-system_worker",
    ] in args
    update, rm = args.index(next(a for a in args if a[:2] == ["service", "update"])), args.index(["secret", "rm", "gemini_api_key_v1"])
    assert update < rm  # the old secret goes only after the rollout
    assert "gemini_api_key_v1" not in docker.secrets() and "gemini_api_key_v2" in docker.secrets()
    assert "rotated-key" not in result.stdout + result.stderr


def test_rotated_secret_is_used_by_the_next_deploy(docker: FakeDocker, tmp_path: Path) -> None:
    assert docker.deploy().returncode == 0
    new_key = tmp_path / "k2"
    new_key.write_text("another-key-not-real-0123456789\n")
    assert docker.run("rotate-secret.sh", str(new_key)).returncode == 0
    docker.reset_log()
    assert docker.deploy().returncode == 0
    deploy = next(c for c in docker.calls() if c["args"][:2] == ["stack", "deploy"])  # type: ignore[index]
    assert deploy["secret_env"]["GEMINI_API_KEY_SECRET"] == "gemini_api_key_v2"  # type: ignore[index]


def test_rotate_secret_keeps_old_secret_when_rollout_fails(docker: FakeDocker, tmp_path: Path) -> None:
    assert docker.deploy().returncode == 0
    new_key = tmp_path / "k"
    new_key.write_text("bad-rollout-key-0123456789\n")
    result = docker.run("rotate-secret.sh", str(new_key), env={"FAKE_DOCKER_ROLLOUT": "rollback_completed"})
    assert result.returncode == 1 and "old secret is kept" in result.stderr
    assert "gemini_api_key_v1" in docker.secrets()


def test_rotate_ca_crt_updates_every_service_with_its_owner(docker: FakeDocker) -> None:
    assert docker.deploy().returncode == 0
    docker.reset_log()
    result = docker.run("rotate-secret.sh", "--secret", "ca_crt", str(docker.pki.ca))
    assert result.returncode == 0, result.stderr
    updates = {a[-1]: a[6] for a in docker.args() if a[:2] == ["service", "update"]}
    assert updates == {
        "ai-system_master": "source=ca_crt_v2,target=ca_crt,uid=10001,gid=10001,mode=0400",
        "ai-system_mosquitto": "source=ca_crt_v2,target=ca_crt,uid=1883,gid=1883,mode=0400",
        "ai-system_worker": "source=ca_crt_v2,target=ca_crt,uid=10001,gid=10001,mode=0400",
    }


def test_rotate_certs_renews_and_rolls_each_service_once(docker: FakeDocker) -> None:
    assert docker.deploy().returncode == 0
    before = docker.pki.cert("worker").read_bytes()
    docker.reset_log()
    result = docker.run("rotate-certs.sh")
    assert result.returncode == 0, result.stderr
    assert docker.pki.cert("worker").read_bytes() != before  # renewed from the same CA
    updates = [a for a in docker.args() if a[:2] == ["service", "update"]]
    assert [u[-1] for u in updates] == ["ai-system_master", "ai-system_mosquitto", "ai-system_worker"]
    assert "source=worker_key_v2,target=worker_key,uid=10001,gid=10001,mode=0400" in updates[2]
    assert {f"{s}_{k}_v1" for s in ("master", "mosquitto", "worker") for k in ("crt", "key")}.isdisjoint(docker.secrets())


def test_scale_passes_the_replica_count(docker: FakeDocker) -> None:
    result = docker.run("scale.sh", "worker", "5")
    assert result.returncode == 0, result.stderr
    assert docker.args() == [["service", "scale", "ai-system_worker=5"]]


@pytest.mark.parametrize("args", [[], ["worker"], ["worker", "many"], ["worker", "-1"], ["worker", "101"], ["db", "2"]])
def test_scale_bad_arguments_print_usage(docker: FakeDocker, args: list[str]) -> None:
    result = docker.run("scale.sh", *args)
    assert result.returncode == 1 and "usage: scripts/scale.sh" in result.stderr
    assert docker.args() == []


def test_scale_refuses_the_master(docker: FakeDocker) -> None:
    result = docker.run("scale.sh", "master", "2")
    assert result.returncode == 1 and "exactly one replica" in result.stderr and docker.args() == []


@pytest.mark.parametrize(
    ("script", "args"),
    [("deploy.sh", ["--bogus"]), ("stop.sh", ["now"]), ("rotate-secret.sh", []),
     ("rotate-secret.sh", ["--secret", "nope", "/etc/hostname"]), ("build.sh", ["--tag"]), ("rotate-certs.sh", ["x"])],
)
def test_bad_arguments_print_usage_and_fail(docker: FakeDocker, script: str, args: list[str]) -> None:
    result = docker.run(script, *args)
    assert result.returncode == 1 and "usage:" in result.stderr
    assert not any(a[:1] in (["stack"], ["service"], ["build"]) or a[:2] == ["secret", "create"] for a in docker.args())


def test_stop_removes_the_stack(docker: FakeDocker) -> None:
    assert docker.run("stop.sh").returncode == 0
    assert docker.args() == [["stack", "rm", "ai-system"]]


def test_build_tags_both_images(docker: FakeDocker) -> None:
    result = docker.run("build.sh", "--tag", "1.2.3", "--registry", "reg.example/ai")
    assert result.returncode == 0, result.stderr
    assert docker.args() == [
        ["build", "-f", "master/Dockerfile", "-t", "reg.example/ai/master:1.2.3", "."],
        ["build", "-f", "worker/Dockerfile", "-t", "reg.example/ai/worker:1.2.3", "."],
    ]


def test_deploy_without_public_origin_says_how_to_fix(docker: FakeDocker) -> None:
    """No --public-origin and no PUBLIC_ORIGINS: refused before anything is created."""
    result = docker.run("deploy.sh", env={"PUBLIC_ORIGINS": ""})
    assert result.returncode == 1 and "--public-origin https://chat.example.org" in result.stderr
    assert docker.secrets() == {} and not any(a[:2] == ["stack", "deploy"] for a in docker.args())


def test_deploy_passes_the_public_origin_to_the_stack(docker: FakeDocker) -> None:
    """The origin reaches the master's PUBLIC_ORIGINS (the stack requires it: ${PUBLIC_ORIGINS:?...})."""
    assert docker.deploy().returncode == 0
    services = json.loads(docker.state.read_text())["services"]
    assert services["ai-system_master"]["environment"]["PUBLIC_ORIGINS"] == ORIGIN


@pytest.mark.parametrize(("versions", "too_old"), [("19.03.15 20.10.24", "client 19.03.15"),
                                                    ("28.2.2 19.03.13", "engine 19.03.13")])
def test_deploy_refuses_docker_older_than_20_10(docker: FakeDocker, versions: str, too_old: str) -> None:
    """A client or engine older than 20.10 (no compose file 3.9) is named, with the minimum, before any change."""
    result = docker.deploy(env={"FAKE_DOCKER_VERSION": versions})
    assert result.returncode == 1
    assert f"docker {too_old} is too old: this stack needs Docker 20.10 or newer" in result.stderr
    assert docker.secrets() == {}


def test_deploy_uses_the_given_stack_file(docker: FakeDocker, tmp_path: Path) -> None:
    """--stack-file deploys a derived file (the Swarm test's) with the same secrets."""
    derived = tmp_path / "derived.yml"
    derived.write_text((REPO / "stack.yml").read_text())
    result = docker.deploy("--stack-file", str(derived))
    assert result.returncode == 0, result.stderr
    assert ["stack", "deploy", "--prune", "-c", str(derived), "ai-system"] in docker.args()


def test_rotation_waits_until_the_tasks_run_the_new_spec(docker: FakeDocker, tmp_path: Path) -> None:
    """Empty update status (no update seen yet) is not 'done': the old secret goes only once the tasks run the new spec."""
    assert docker.deploy().returncode == 0
    docker.reset_log()
    new_key = tmp_path / "k"
    new_key.write_text("lagging-rollout-key-0123456789\n")
    result = docker.run("rotate-secret.sh", str(new_key), env={"FAKE_DOCKER_ROLLOUT": "", "FAKE_DOCKER_TASK_LAG": "2"})
    assert result.returncode == 0, result.stderr
    args = docker.args()
    rm = args.index(["secret", "rm", "gemini_api_key_v1"])
    task_checks = [i for i, a in enumerate(args) if a[:1] == ["inspect"] and a[-1] == "task-ai-system_worker"]
    assert len([i for i in task_checks if i < rm]) == 3  # two polls saw the old spec, the third the new one


def test_rotation_times_out_while_the_tasks_run_the_old_spec(docker: FakeDocker, tmp_path: Path) -> None:
    """Tasks that never take the new spec: the rotation fails and the old secret is kept."""
    assert docker.deploy().returncode == 0
    new_key = tmp_path / "k"
    new_key.write_text("stuck-rollout-key-0123456789\n")
    result = docker.run("rotate-secret.sh", str(new_key), env={"FAKE_DOCKER_TASK_LAG": "100", "ROLLOUT_TIMEOUT_S": "2"})
    assert result.returncode == 1 and "did not finish in 2 s" in result.stderr
    assert "gemini_api_key_v1" in docker.secrets()


def test_secret_table_is_read_from_the_deployed_stack(docker: FakeDocker) -> None:
    """secret_services answers from the services deployed from stack.yml, for every secret."""
    assert docker.deploy().returncode == 0
    table = stack_secret_table()
    script = "; ".join(f'echo "{name}=$(secret_services {name} | tr "\\n" " ")"' for name in SECRETS)
    result = docker.run_bash(f'source scripts/swarm-lib.sh; {script}')
    assert result.returncode == 0, result.stderr
    got = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert {name: set(services.split()) for name, services in got.items()} == table
