"""Every knob from the environment: SOTAY_WEB_* for the front's own, SOTAY_REDIS_URL shared."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The upstreams the front calls, by the name used in code and in its pages.
UPSTREAMS = ("identity", "orgtree", "meetings", "content", "learning", "feedback", "reporting")


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOTAY_WEB_", extra="ignore")

    service_name: str = "web"
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("SOTAY_WEB_LOG_LEVEL", "SOTAY_LOG_LEVEL")
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("SOTAY_WEB_REDIS_URL", "SOTAY_REDIS_URL"),
    )

    identity_url: str = "http://127.0.0.1:8002"
    orgtree_url: str = "http://127.0.0.1:8001"
    meetings_url: str = "http://127.0.0.1:8003"
    content_url: str = "http://127.0.0.1:8004"
    learning_url: str = "http://127.0.0.1:8005"
    feedback_url: str = "http://127.0.0.1:8006"
    reporting_url: str = "http://127.0.0.1:8007"
    # Services whose screens are offered; one not listed (or unreachable) shows "Chưa có".
    enabled: list[str] = list(UPSTREAMS)

    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    max_connections: int = 200

    # A session not signed in (it only holds the CSRF token of the sign-in form) lives this long.
    anonymous_session_seconds: int = 2 * 3600
    # The access token is refreshed when it has less than this left.
    refresh_margin_seconds: int = 60
    # None: Secure when the request came over https (directly or via X-Forwarded-Proto).
    cookie_secure: bool | None = None

    def base_url(self, name: str) -> str:
        url: str = getattr(self, f"{name}_url")
        return url.rstrip("/")
