"""The services' public HTTP APIs, called server side on the signed-in person's behalf.

One `httpx.AsyncClient` per upstream (its own pool and timeouts). A refusal (4xx)
becomes `Refused`, carrying the service's Vietnamese message and the field at
fault; no answer, a timeout or a 5xx becomes `Unavailable`. Neither carries a
request body, so personal data never reaches a log through them.
"""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.propagate import inject

from sotay_web.settings import UPSTREAMS, WebSettings

SERVICE_LABELS = {
    "identity": "Tài khoản",
    "orgtree": "Cây tổ chức",
    "meetings": "Sinh hoạt chi bộ",
    "content": "Tin tức, văn bản",
    "learning": "Học tập nghị quyết",
    "feedback": "Góp ý, hỏi đáp",
    "reporting": "Báo cáo, thống kê",
}


class Refused(Exception):
    """A 4xx from a service: shown to the person next to the field it names."""

    def __init__(self, service: str, status: int, body: dict[str, Any]) -> None:
        self.service = service
        self.status = status
        self.body = body
        self.code = str(body.get("error") or "refused")
        self.message = str(body.get("message") or "Yêu cầu không hợp lệ")
        self.field: str | None = body.get("field")
        super().__init__(f"{service} answered {status} {self.code}")

    def field_errors(self) -> dict[str, str]:
        """Field → message; a service's several mistakes (`fields`) each at its own field."""
        errors: dict[str, str] = {}
        for item in self.body.get("fields") or []:
            name = str(item.get("field") or "")
            if name and name not in errors:
                errors[name] = str(item.get("message") or self.message)
        if self.field:
            errors.setdefault(self.field, self.message)
        return errors


class Unavailable(Exception):
    """The service did not answer in time, or failed (5xx)."""

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.label = SERVICE_LABELS.get(service, service)
        super().__init__(f"{service} unavailable: {reason}")


class Upstreams:
    def __init__(self, settings: WebSettings, transports: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.enabled = set(settings.enabled)
        timeout = httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
        )
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
            # Dropped here before the service drops it (uvicorn's 5 s by default, 75 s in
            # the images): reusing a connection the service is closing resets the request.
            keepalive_expiry=4.0,
        )
        self.clients = {
            name: httpx.AsyncClient(
                base_url=settings.base_url(name),
                timeout=timeout,
                limits=limits,
                transport=(transports or {}).get(name),
                headers={"User-Agent": "sotay-web"},
            )
            for name in UPSTREAMS
        }

    def has(self, service: str) -> bool:
        return service in self.enabled

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if service not in self.enabled:
            raise Unavailable(service, "not enabled")
        headers: dict[str, str] = {}
        inject(headers)  # one trace from the browser's request through every service
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self.clients[service].request(
                method, path, json=json, params=params, files=files, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Unavailable(service, type(exc).__name__) from None
        if response.status_code >= 500:
            raise Unavailable(service, f"HTTP {response.status_code}")
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise Refused(service, response.status_code, body if isinstance(body, dict) else {})
        return response

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.send(service, method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()
