"""Settings shared by master and worker: environment values, secrets only as *_FILE paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.secret_files import ConfigError, read_secret
from common.tls import TlsFiles


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


# Every list setting is written the same way: comma-separated (`a,b,c`), never JSON.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR)$")
    # Log prompts and answers (still redacted). Off: ids, sizes and timings only.
    log_content: bool = False
    topic_prefix: str = Field(default="upb", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")

    # /metrics (Prometheus) on its own port; unset: no metrics endpoint. Not the published HTTPS port.
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    mqtt_host: str = "mosquitto"
    mqtt_port: int = Field(default=8883, ge=1, le=65535)
    mqtt_password_file: Path

    tls_ca_file: Path
    tls_cert_file: Path
    tls_key_file: Path

    def mqtt_password(self) -> str:
        """This service's MQTT password, read from its file (and registered for log redaction)."""
        return read_secret("MQTT_PASSWORD_FILE", self.mqtt_password_file)

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
            field = str(err["loc"][0]) if err["loc"] else ""
            name = field.upper() or "settings"
            hint = cls.model_fields[field].description if field in cls.model_fields else None
            if err["type"] == "missing":
                problems.append(f"{name} is not set" + (f": set it to {hint}" if hint else ""))
            else:
                problems.append(f"{name}: {err['msg']}")
        raise ConfigError("; ".join(problems) + " (see README, Configuration)") from None
