"""`python -m master.users_cli`: the operator's account command (scripts/users.sh wraps it).

Passwords are read from a prompt (on a terminal) or from standard input, never from arguments,
and never printed. Works on the store file directly, also while the master runs (SQLite WAL):
`passwd` and `disable` end the user's sessions, and the master drops their live connections
within a few seconds.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from common.secret_files import ConfigError
from master.accounts import (
    AccountError, Passwords, add_user, check_name, check_password, find_user, list_users, set_disabled, set_password,
    set_role,
)
from master.api_tokens import create_token
from master.store import open_database_sync

DEFAULT_DATABASE = "/var/lib/ai-system/master.db"


def read_password(confirm: bool) -> str:
    """From the terminal (asked twice) or the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Password again: ") != first:
            raise AccountError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise AccountError("no password on standard input: pipe it in, or run on a terminal to be asked")
    return line.rstrip("\r\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="users.sh", description="Manage chat users in the master's store.")
    parser.add_argument("--database", default=None,
                        help=f"the store file (default: $DATABASE_FILE, else {DEFAULT_DATABASE})")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user (password from the prompt or stdin)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="with the admin role")
    sub.add_parser("passwd", help="set a new password and end the user's sessions").add_argument("name")
    sub.add_parser("disable", help="disable a user and end their sessions").add_argument("name")
    sub.add_parser("enable", help="enable a disabled user").add_argument("name")
    role = sub.add_parser("role", help="set a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=["user", "admin"])
    token = sub.add_parser("token", help="make a personal API token for a user (printed once)")
    token.add_argument("name")
    token.add_argument("--label", default="scripts/users.sh", help="what it is for (shown in the list)")
    sub.add_parser("list", help="list users (name, role, state)")
    args = parser.parse_args(argv)
    database = Path(args.database or os.environ.get("DATABASE_FILE") or DEFAULT_DATABASE)
    try:
        db = open_database_sync(database)
    except ConfigError as exc:
        print(f"users: error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "list":
            for user in db.run_sync(list_users):
                print(f"{user.name}\t{user.role}\t{'disabled' if user.disabled else 'active'}")
            return 0
        name = check_name(args.name)
        if args.command in ("add", "passwd"):
            password = check_password(read_password(confirm=True))
            password_hash = Passwords(*_hash_cost()).hash(password)
            if args.command == "add":
                db.run_sync(add_user, name, password_hash, "admin" if args.admin else "user")
                print(f"added {'admin' if args.admin else 'user'} {name}")
            else:
                db.run_sync(set_password, name, password_hash)
                print(f"changed the password of {name}; their sessions are ended")
        elif args.command in ("disable", "enable"):
            db.run_sync(set_disabled, name, args.command == "disable")
            print(f"{args.command}d {name}" + ("; their sessions are ended" if args.command == "disable" else ""))
        elif args.command == "token":
            user = db.run_sync(find_user, name)
            if user is None:
                raise AccountError(f"no user {name!r}: see 'list'")
            try:
                _, value = db.run_sync(create_token, user.id, args.label[:64])
            except ValueError as exc:
                raise AccountError(str(exc)) from None
            print(value)  # the only time it is shown: the store keeps its hash
        elif args.command == "role":
            db.run_sync(set_role, name, args.role)
            print(f"{name} is now {args.role}")
    except AccountError as exc:
        print(f"users: error: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


def _hash_cost() -> tuple[int, int]:
    """The same argon2id cost as the master (PASSWORD_HASH_TIME_COST / _MEMORY_KIB)."""
    return int(os.environ.get("PASSWORD_HASH_TIME_COST", "1")), int(os.environ.get("PASSWORD_HASH_MEMORY_KIB", "47104"))


if __name__ == "__main__":
    sys.exit(main())
