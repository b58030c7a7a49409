"""Read secrets and TLS material from files named by `*_FILE` settings, with one-line errors."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A setting points at something unusable; the message names the setting, the path and the fix."""


def read_file_setting(setting: str, path: Path | str | None, *, what: str = "file") -> bytes:
    """The bytes of the file that `setting` names, or a ConfigError that says how to fix it."""
    if path is None or str(path) == "":
        raise ConfigError(f"{setting} is not set: point it at the {what} (for Docker, /run/secrets/<name>)")
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{setting}={p} does not exist: create the {what} or set the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{setting}={p} is a directory: point it at the {what} itself") from None
    except PermissionError:
        raise ConfigError(f"{setting}={p} is not readable by this user: fix its owner or mode") from None
    except OSError as exc:
        raise ConfigError(f"{setting}={p} is not readable ({exc.strerror}): fix it or set the path") from None
    if not data.strip():
        raise ConfigError(f"{setting}={p} is empty: write the {what} into it")
    return data


def read_secret(setting: str, path: Path | str | None) -> str:
    """A secret value (surrounding whitespace stripped) from its file; registered for log redaction."""
    value = read_file_setting(setting, path, what="secret").decode("utf-8", errors="strict").strip()
    from common.redaction import register_secret  # late: redaction imports nothing from here

    register_secret(value)
    return value
