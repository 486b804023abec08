"""Every knob from the environment (prefix SOTAY_), one class per concern."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class InfraSettings(BaseSettings):
    """Where Kafka, MongoDB and Redis are. The same code runs against the embedded
    servers, testcontainers or a production cluster: only these values change."""

    model_config = SettingsConfigDict(env_prefix="SOTAY_", extra="ignore")

    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # On for real Kafka; the embedded Tansu broker refuses InitProducerId.
    kafka_idempotent_producer: bool = True
    kafka_partitions: int = 6
    kafka_request_timeout_ms: int = 40_000


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOTAY_AUTH_", extra="ignore")

    # Identity's JWKS: an http(s) URL, a file path, or the JSON itself.
    jwks: str = ""
    issuer: str = "sotay-identity"
    audience: str = "sotay"
    jwks_cache_seconds: float = 300.0
    jwks_min_refetch_seconds: float = 5.0


class ServiceSettings(InfraSettings):
    service_name: str = "sotay"
    database: str = "sotay"
    relay_batch_size: int = 500
    relay_idle_interval: float = 0.5
    consumer_group_prefix: str = "sotay"
    log_level: str = "INFO"
