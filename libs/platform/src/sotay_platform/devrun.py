"""`make run`: the embedded stack, every service, a living demo, until Ctrl-C.

Services are found from `services/*/pyproject.toml` ([tool.sotay] app, port).
A development signing key is made under .stack/keys; every service verifies
tokens with the matching JWKS, identity (when present) signs with the key.
MongoDB keeps its data under .stack/mongo, so stopping and starting again keeps
every member, meeting and figure (`make clean` starts afresh); the broker keeps
its log in memory and the relays publish the history again when it comes back
empty. Spans are written as OTLP JSON to .stack/traces.jsonl:
`python -m sotay_platform.trace TRACE_ID` prints a request's path from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings
from sotay_platform.stack import EmbeddedStack, wait_for_port

ROOT = Path.cwd()
STATE = ROOT / ".stack"


def discover() -> list[tuple[str, str, int]]:
    found = []
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("sotay")
        if table:
            found.append((pyproject.parent.name, table["app"], int(table["port"])))
    return found


def dev_issuer() -> TokenIssuer:
    keys_dir = STATE / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    pem = keys_dir / "dev-1.pem"
    if not pem.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    private = serialization.load_pem_private_key(pem.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    issuer = TokenIssuer({"dev-1": private}, "dev-1", AuthSettings())
    (STATE / "jwks.json").write_text(json.dumps(issuer.jwks()))
    return issuer


def load_demo(token: str, env: dict[str, str], services: set[str]) -> None:
    """Through the services' own commands, so every figure is real; a second run adds nothing."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url="http://127.0.0.1:8001", headers=headers, timeout=60) as client:
        client.post("/units", json={"code": "TW", "name": "Trung ương", "level": "central"})
        demo = ROOT / "deploy" / "demo" / "org-tree.csv"
        report = client.post(
            "/units/import", files={"file": (demo.name, demo.read_bytes(), "text/csv")}
        ).json()
        print(f"cây tổ chức mẫu: {report['created']} đơn vị mới, {report['unchanged']} đã có")
    # Each service that brings a demo of its own loads it the same way, in this order.
    for service, module, args in (
        ("web", "sotay_web.demo", ["--token", token]),
        ("content", "sotay_content.demo", ["--token", token]),
        ("feedback", "sotay_feedback.demo", []),
    ):
        if service in services:
            print(f"dữ liệu trình diễn: {service}…", flush=True)
            subprocess.run([sys.executable, "-m", module, *args], env=env, check=False)


def wait_healthy(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"service on port {port} did not come up")


def main() -> None:
    STATE.mkdir(exist_ok=True)
    (STATE / "mongo").mkdir(exist_ok=True)
    stack = EmbeddedStack(
        STATE,
        kafka_port=19092,
        mongo_port=27027,
        redis_port=16379,
        mongo_storage=str(STATE / "mongo"),
    )
    services: list[subprocess.Popen[bytes]] = []
    try:
        stack.start()
        issuer = dev_issuer()
        env = {
            **os.environ,
            **stack.env,
            "SOTAY_AUTH_JWKS": str(STATE / "jwks.json"),
            "SOTAY_IDENTITY_KEYS_DIR": str(STATE / "keys"),
            "SOTAY_TRACE_FILE": str(STATE / "traces.jsonl"),
            # Every replica of meetings must derive the same check-in codes.
            "SOTAY_CHECKIN_SECRET": "dev-only-checkin-secret",
            # On one machine every request comes from 127.0.0.1: the demo and the person
            # trying it would share one client's sign-in limit.
            "SOTAY_IDENTITY_LIMIT_LOGIN_PER_CLIENT": "100000",
            "SOTAY_IDENTITY_LIMIT_REGISTER_PER_CLIENT": "100000",
            "SOTAY_IDENTITY_LIMIT_REFRESH_PER_CLIENT": "100000",
            # The check-in QR opens the web front's check-in page.
            "SOTAY_CHECKIN_LINK_BASE": "http://127.0.0.1:8000/diem-danh",
        }
        found = discover()
        for name, app, port in found:
            log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
            services.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        app,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--timeout-keep-alive",
                        "75",  # as in the images: longer than the web front's pool keeps one
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for name, _, port in found:
            wait_for_port(port, timeout=60, name=name)
            wait_healthy(port)
        token = issuer.issue("demo-admin", [Grant(Role.system_admin, "TW")], ttl_seconds=12 * 3600)
        load_demo(token, env, {name for name, _, _ in found})
        print("\nSổ tay đang chạy (Ctrl-C để dừng):")
        if any(name == "web" for name, _, _ in found):
            print("  Ứng dụng (mở trên điện thoại hoặc máy tính): http://127.0.0.1:8000")
        for name, _, port in found:
            print(
                f"  {name:<10} http://127.0.0.1:{port}   tài liệu API: http://127.0.0.1:{port}/docs"
            )
        print(
            f"  Kafka {stack.env['SOTAY_KAFKA_BOOTSTRAP']}  MongoDB {stack.env['SOTAY_MONGO_URL']}"
            f"  Redis {stack.env['SOTAY_REDIS_URL']}"
        )
        print(f"  nhật ký: {STATE}/*.log")
        print(f"\nMã truy cập quản trị (12 giờ):\n  Authorization: Bearer {token}\n", flush=True)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)
    finally:
        print("đang dừng…")
        for process in services:
            if process.poll() is None:
                process.terminate()
        for process in services:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        stack.stop()


if __name__ == "__main__":
    main()
