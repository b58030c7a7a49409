"""Settings shared by master and worker: environment values, secrets only as *_FILE paths."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.secret_files import ConfigError
from common.tls import TlsFiles


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR)$")
    # Log prompts and answers (still redacted). Off: ids, sizes and timings only.
    log_content: bool = False
    topic_prefix: str = Field(default="upb", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")

    mqtt_host: str = "mosquitto"
    mqtt_port: int = Field(default=8883, ge=1, le=65535)
    mqtt_password_file: Path

    tls_ca_file: Path
    tls_cert_file: Path
    tls_key_file: Path

    def tls(self) -> TlsFiles:
        return TlsFiles(
            ca=self.tls_ca_file,
            cert=self.tls_cert_file,
            key=self.tls_key_file,
            ca_setting="TLS_CA_FILE",
            cert_setting="TLS_CERT_FILE",
            key_setting="TLS_KEY_FILE",
        )

    def mqtt_tls(self) -> TlsFiles:
        """For MQTT the client only needs our CA: the broker authenticates it by password."""
        return TlsFiles(ca=self.tls_ca_file, ca_setting="TLS_CA_FILE")


S = TypeVar("S", bound=CommonSettings)


def load_settings(cls: type[S], **overrides: object) -> S:
    """`cls` from the environment (and `overrides`), or a ConfigError naming each bad setting."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            if err["type"] == "missing":
                problems.append(f"{name} is not set")
            else:
                problems.append(f"{name}: {err['msg']}")
        raise ConfigError("; ".join(problems) + " (see README, Configuration)") from None
