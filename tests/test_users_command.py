"""scripts/users.sh: add, passwd, disable, enable, list against the store, also while the master runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from tests.conftest import Pki
from tests.login_helpers import raw_session, session_header
from tests.stack_helpers import ChatClient, LoginFailed, local_stack, login_cookie, wait_until

pytestmark = pytest.mark.integration  # runs the command as a process
REPO = Path(__file__).resolve().parent.parent
PASSWORD = "a long test password 123"


def users(database: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_FILE": str(database), "AISYS_PYTHON": sys.executable,
           "PASSWORD_HASH_MEMORY_KIB": "8192"}
    return subprocess.run([str(REPO / "scripts" / "users.sh"), *args], input=stdin, env=env, capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def test_add_list_disable_enable(tmp_path: Path) -> None:
    """add (password on stdin) and list; disable and enable show in the list; the password is never printed."""
    db = tmp_path / "master.db"
    added = users(db, "add", "alice", "--admin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert users(db, "add", "bob", stdin=PASSWORD + "\n").returncode == 0
    assert users(db, "list").stdout.splitlines() == ["alice\tadmin\tactive", "bob\tuser\tactive"]
    assert users(db, "disable", "bob").returncode == 0
    assert "bob\tuser\tdisabled" in users(db, "list").stdout
    assert users(db, "enable", "bob").returncode == 0
    assert "bob\tuser\tactive" in users(db, "list").stdout
    for result in (added,):
        assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("args, stdin, message", [
    (["add", "bad name!"], PASSWORD + "\n", "is not valid"),
    (["add", "carol"], "short\n", "at least 10"),
    (["add", "carol"], "", "no password on standard input"),
    (["passwd", "nobody"], PASSWORD + "\n", "no user 'nobody'"),
    (["frobnicate", "x"], "", "usage:"),
])
def test_bad_input_gets_one_clear_error(tmp_path: Path, args: list[str], stdin: str, message: str) -> None:
    """A bad name, a short or missing password, an unknown user, an unknown command: exit 1, one line, nothing changed."""
    db = tmp_path / "master.db"
    result = users(db, *args, stdin=stdin)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    if db.exists():
        assert users(db, "list").stdout == ""


def test_adding_a_user_twice_is_refused(tmp_path: Path) -> None:
    """An existing name is not overwritten: the error says to use passwd."""
    db = tmp_path / "master.db"
    users(db, "add", "alice", stdin=PASSWORD + "\n")
    again = users(db, "add", "alice", stdin="another password 456\n")
    assert again.returncode == 1 and "passwd" in again.stderr


async def test_passwd_and_disable_end_sessions_of_the_running_master(
        pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """On the live master's store: passwd ends sessions (HTTP and Socket.IO) and the new password works; disable refuses login."""
    db = tmp_path / "master.db"
    assert users(db, "add", "dave", stdin=PASSWORD + "\n").returncode == 0
    async with local_stack(pki, broker, workers=0, master_overrides={"database_file": db}) as stack:
        cookie = await login_cookie(pki, stack.url, "dave", PASSWORD)
        client = ChatClient(pki, cookie=cookie)
        await client.connect(stack.url)
        try:
            changed = users(db, "passwd", "dave", stdin="the new password 789\n")
            assert changed.returncode == 0 and "the new password" not in changed.stdout + changed.stderr
            await wait_until(lambda: client.sio is not None and not client.sio.connected, timeout=6, what="drop")
        finally:
            await client.close()
        async with raw_session(pki) as http, http.get(stack.url + "/session", headers=session_header(cookie)) as resp:
            assert resp.status == 401
        with pytest.raises(LoginFailed):
            await login_cookie(pki, stack.url, "dave", PASSWORD)
        await login_cookie(pki, stack.url, "dave", "the new password 789")
        assert users(db, "disable", "dave").returncode == 0
        with pytest.raises(LoginFailed) as refused:
            await login_cookie(pki, stack.url, "dave", "the new password 789")
        assert refused.value.status == 403


async def test_token_command_prints_a_working_token_once(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """`users.sh token NAME` prints a token the API accepts; the store keeps only its hash."""
    db = tmp_path / "master.db"
    assert users(db, "add", "erin", stdin=PASSWORD + "\n").returncode == 0
    made = users(db, "token", "erin", "--label", "ci")
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("aisys_")
    import sqlite3
    with sqlite3.connect(db) as conn:
        assert token not in str(conn.execute("SELECT * FROM api_tokens").fetchall())
    async with local_stack(pki, broker, workers=0, master_overrides={"database_file": db}) as stack, \
            raw_session(pki) as http:
        async with http.get(stack.url + "/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200 and (await resp.json())["tokens"][0]["label"] == "ci"
