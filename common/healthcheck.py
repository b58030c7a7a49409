"""Container health checks (Docker HEALTHCHECK): exit 0 when healthy, 1 with one line otherwise.

    python -m common.healthcheck https URL --ca CA_FILE    master: GET URL, verified against our CA, 200
    python -m common.healthcheck file PATH --max-age S     worker: PATH touched within S seconds
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from common.secret_files import ConfigError
from common.tls import TlsFiles, client_context


def check_https(url: str, ca: Path, timeout: float = 3.0) -> str | None:
    """None when URL answers 200 over TLS verified by `ca`; otherwise why not."""
    try:
        ctx = client_context(TlsFiles(ca=ca, ca_setting="--ca"))
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return None if resp.status == 200 else f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ConfigError) as exc:
        return f"{url}: {exc}"


def check_file(path: Path, max_age_s: float) -> str | None:
    """None when `path` was modified within `max_age_s`; otherwise why not."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return f"{path} does not exist yet (not connected to the broker)"
    return None if age <= max_age_s else f"{path} is {age:.0f} s old (limit {max_age_s:.0f} s)"


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a"):
        os.utime(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck")
    sub = parser.add_subparsers(dest="kind", required=True)
    https = sub.add_parser("https")
    https.add_argument("url")
    https.add_argument("--ca", type=Path, required=True)
    file = sub.add_parser("file")
    file.add_argument("path", type=Path)
    file.add_argument("--max-age", type=float, default=35.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    problem = check_https(args.url, args.ca) if args.kind == "https" else check_file(args.path, args.max_age)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
