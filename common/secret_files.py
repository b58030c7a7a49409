"""Read secrets and TLS material from files named by `*_FILE` settings, with one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


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


class RotatingSecret:
    """A secret file that may be replaced while the service runs (e.g. the Gemini key on rotation).

    `current()` re-reads it when its modification time or size changes; an unreadable new
    version keeps the previous value (logged), so a half-done rotation never stops the service.
    """

    def __init__(self, setting: str, path: Path) -> None:
        self.path = path
        self.setting = setting
        self._stamp: tuple[int, int] | None = None
        self._key = ""
        self.current()

    def _file_stamp(self) -> tuple[int, int]:
        try:
            st = self.path.stat()
        except OSError:
            return (-1, -1)
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> tuple[str, bool]:
        """The value and whether it changed since the last call. Raises ConfigError when unreadable."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return self._key, False
        try:
            key = read_secret(self.setting, self.path)
        except ConfigError:
            if self._key:
                logger.warning("%s=%s became unreadable; keeping the previous value", self.setting, self.path)
                return self._key, False
            raise
        changed = bool(self._key) and key != self._key
        self._stamp, self._key = stamp, key
        if changed:
            logger.info("%s changed: using the new value from now on", self.setting)
        return key, changed
