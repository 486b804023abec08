"""The real platform for the browser tests: org-tree, identity, meetings and learning as
uvicorn subprocesses on the embedded stack, the web front in front of them, and Debian's
chromium driven by Playwright (installed when missing, as the reporting dashboard test does).

Seeding goes through the services' own public APIs, with tokens signed by the key identity
signs with (an operator's bootstrap, as `sotay_identity.cli operator-token` makes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings

CHROMIUM = os.environ.get("SOTAY_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
SERVICES = {
    "orgtree": "sotay_orgtree.main:create_app",
    "identity": "sotay_identity.main:create_app",
    "meetings": "sotay_meetings.main:create_app",
    "learning": "sotay_learning.main:create_app",
    "content": "sotay_content.main:create_app",
    "feedback": "sotay_feedback.main:create_app",
    # Its report clock runs 28 days ahead (SOTAY_REPORT_CLOCK_AHEAD_DAYS), past this
    # month's report day, so this month's report can be issued on units created today.
    "reporting": "sotay_reporting.main:create_app",
}
HERE = Path(__file__).resolve().parent


def ensure_browser() -> None:
    for module, package in (
        ("playwright", "playwright"),
        ("axe_playwright_python", "axe-playwright-python"),
        ("zxingcpp", "zxing-cpp"),
    ):
        try:
            __import__(module)
        except ImportError:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail("chromium is missing and cannot be installed here (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_live(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


class Api:
    """One service's API with a token; a refusal fails the set-up loudly."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def __call__(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        response = self.client.request(method, path, **kw)
        assert response.status_code in ok, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def until(self, method: str, path: str, timeout: float = 60, **kw: Any) -> Any:
        """Projections are asynchronous: ask again until the service answers 2xx."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.request(method, path, **kw)
            if response.status_code < 300:
                return response.json() if response.content else None
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
            time.sleep(0.2)


@dataclass
class Platform:
    urls: dict[str, str]
    issuer: TokenIssuer
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def web(self) -> str:
        return self.urls["web"]

    def token(self, grants: list[Grant], member_id: str | None = None) -> str:
        subject = member_id or f"operator:{uuid.uuid4().hex[:6]}"
        return self.issuer.issue(subject, grants, member_id=member_id, ttl_seconds=3600)

    def api(self, service: str, token: str) -> Api:
        return Api(self.urls[service], token)

    def admin(self, service: str) -> Api:
        return self.api(service, self.token([Grant(Role.system_admin, "TW")]))


@pytest.fixture(scope="session")
def platform(infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    ensure_browser()
    work = tmp_path_factory.mktemp("platform")
    keys = work / "keys"
    keys.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (keys / "web-test.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    issuer = TokenIssuer({"web-test": key}, "web-test", AuthSettings())
    (work / "jwks.json").write_text(json.dumps(issuer.jwks()))
    ports = {name: free_port() for name in [*SERVICES, "web"]}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    unique = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "SOTAY_AUTH_JWKS": str(work / "jwks.json"),
        "SOTAY_IDENTITY_KEYS_DIR": str(keys),
        "SOTAY_IDENTITY_PII_KEY": "web-tests-" + unique,
        "SOTAY_CONSUMER_GROUP_PREFIX": f"webtest-{unique}",
        "SOTAY_RELAY_IDLE_INTERVAL": "0.05",
        "SOTAY_KAFKA_PARTITIONS": "3",
        "SOTAY_ARGON2_TIME_COST": "1",
        "SOTAY_ARGON2_MEMORY_KIB": "8192",
        "SOTAY_ARGON2_PARALLELISM": "1",
        "SOTAY_ROLLUP_INTERVAL": "1",
        "SOTAY_CHECKIN_SECRET": "web-tests-" + unique,
        # Codes rotate every 20 s (each valid for two steps), so the offline test sees a
        # code typed offline go stale within a minute instead of two.
        "SOTAY_CHECKIN_CODE_STEP_SECONDS": "20",
        "SOTAY_CHECKIN_LINK_BASE": f"{urls['web']}/diem-danh",
        "SOTAY_REPORT_CLOCK_AHEAD_DAYS": "28",
        "SOTAY_LOG_LEVEL": "WARNING",
        **{f"SOTAY_WEB_{name.upper()}_URL": urls[name] for name in SERVICES},
        "SOTAY_WEB_ENABLED": json.dumps(list(SERVICES)),
    }
    # While other packages are mid-change in a shared checkout, the services can be run from
    # a snapshot of theirs (e.g. `git archive HEAD` unpacked): its src folders go first.
    snapshot = os.environ.get("SOTAY_WEB_UPSTREAM_SNAPSHOT")
    if snapshot:
        roots = sorted(Path(snapshot).glob("libs/*/src")) + sorted(
            Path(snapshot).glob("services/*/src")
        )
        env["PYTHONPATH"] = os.pathsep.join(str(r) for r in roots)
    # The web front is this package's working copy, on the snapshot's libraries if any.
    web_env = {
        "PYTHONPATH": os.pathsep.join(
            p for p in env.get("PYTHONPATH", "").split(os.pathsep) if "/libs/" in p
        )
    }
    platform = Platform(urls, issuer)
    apps = {**SERVICES, "web": "sotay_web.main:create_app"}
    try:
        for name, app in apps.items():
            log = work / f"{name}.log"
            platform.processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    app,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports[name]),
                    "--log-level",
                    "warning",
                ],
                env={**env, "SOTAY_DATABASE": f"web_{name}_{unique}"} | web_env
                if name == "web"
                else {**env, "SOTAY_DATABASE": f"web_{name}_{unique}"},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for name in apps:
            wait_live(urls[name], platform.processes[name], work / f"{name}.log")
        yield platform
    finally:
        for process in platform.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in platform.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Makes a fresh phone-sized Chromium profile; all are closed at the module's end.

    Per module, not per session: Playwright's sync API keeps an event loop running in
    this thread while it is started, and an asyncio test run after it in the same
    process (another package's, in any order) could not start its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        opened: list[Any] = []

        def make(width: int = 360, height: int = 800) -> Any:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": width, "height": height},
                locale="vi-VN",
                timezone_id="Asia/Ho_Chi_Minh",
            )
            opened.append(context)
            return context

        yield make
        for context in opened:
            context.close()


def shoot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, type="png")
    return path


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.0/2.1 A and AA rules, run inside the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        options={
            "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            "resultTypes": ["violations"],
        },
    )
    assert results.response["testEngine"]["name"] == "axe-core"  # it did run in the page
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results.response["violations"]
    ]


TEMPORARY = "TamThoi2026"
CHOSEN = "LanPhuLoc1968"
PHONE = "0912000001"
BRANCH = "QNG.BS.PL"

QUESTIONS = [
    (
        "Nghị quyết 57-NQ/TW bàn về lĩnh vực nào?",
        ["Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số", "Nông nghiệp", "Du lịch"],
        0,
    ),
    (
        "Chuyển đổi số quốc gia lấy ai làm trung tâm?",
        ["Người dân và doanh nghiệp", "Cơ quan nhà nước", "Doanh nghiệp nước ngoài"],
        0,
    ),
    (
        "Đảng viên cần làm gì sau khi học tập nghị quyết?",
        [
            "Viết bài thu hoạch và xây dựng kế hoạch hành động",
            "Không cần làm gì",
            "Chỉ đọc tóm tắt",
        ],
        0,
    ),
]


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture(scope="session")
def seeded(platform: Platform) -> dict[str, Any]:
    """A province, a commune, a branch; a secretary and a member; three meetings; a campaign."""
    tree = platform.admin("orgtree")
    for unit in (
        {"code": "TW", "name": "Trung ương", "level": "central"},
        {
            "code": "QNG",
            "name": "Đảng bộ tỉnh Quảng Ngãi",
            "level": "province",
            "parent_code": "TW",
        },
        {"code": "QNG.BS", "name": "Đảng bộ xã Bình Sơn", "level": "commune", "parent_code": "QNG"},
        {"code": BRANCH, "name": "Chi bộ thôn Phú Lộc", "level": "branch", "parent_code": "QNG.BS"},
    ):
        tree("POST", "/units", json=unit)
    identity = platform.admin("identity")
    member = identity.until(
        "POST",
        "/members",
        json={
            "full_name": "Nguyễn Thị Lan",
            "birth_date": "12/03/1968",
            "gender": "Nữ",
            "status": "official",
            "admitted_on": "19/05/1995",
            "official_on": "19/05/1996",
            "party_card_no": "51000123",
            "citizen_id": "051168001234",
            "phone": PHONE,
            "branch_id": BRANCH,
            "password": TEMPORARY,
        },
    )
    secretary = identity(
        "POST",
        "/members",
        json={
            "full_name": "Trần Văn Hùng",
            "birth_date": "02/09/1965",
            "gender": "Nam",
            "status": "official",
            "admitted_on": "03/02/1990",
            "official_on": "03/02/1991",
            "party_card_no": "51000045",
            "citizen_id": "051065004321",
            "phone": "0912000002",
            "branch_id": BRANCH,
        },
    )
    elder = identity(
        "POST",
        "/members",
        json={
            "full_name": "Lê Văn Minh",
            "birth_date": "20/10/1948",
            "gender": "Nam",
            "status": "official",
            "admitted_on": "01/06/1970",
            "official_on": "01/06/1971",
            "party_card_no": "51000007",
            "citizen_id": "051048000777",
            "branch_id": BRANCH,
        },
    )
    identity(
        "POST",
        f"/members/{secretary['member_id']}/roles",
        json={"role": "branch_secretary", "unit_id": BRANCH},
    )
    mid, sid = member["member_id"], secretary["member_id"]
    meetings = platform.api(
        "meetings", platform.token([Grant(Role.branch_secretary, BRANCH)], member_id=sid)
    )
    meetings.until(
        "GET",
        f"/units/{BRANCH}/roster",
        timeout=60,
    )

    def roster_has_both() -> bool:
        found = {m["member_id"] for m in meetings("GET", f"/units/{BRANCH}/roster")["members"]}
        return {mid, sid, elder["member_id"]} <= found

    wait(roster_has_both)
    now = datetime.now(UTC).replace(microsecond=0)
    leave = meetings(
        "POST",
        "/meetings",
        json={
            "unit_id": BRANCH,
            "kind": "regular",
            "title": "Sinh hoạt chi bộ thường kỳ tháng 12/2026",
            "starts_at": iso(now + timedelta(days=3)),
            "ends_at": iso(now + timedelta(days=3, hours=2)),
            "location": "Nhà văn hóa thôn Phú Lộc",
            "agenda": ["Kiểm điểm công tác tháng 11", "Phương hướng tháng 12"],
        },
    )
    tonight = meetings(
        "POST",
        "/meetings",
        json={
            "unit_id": BRANCH,
            "kind": "thematic",
            "title": "Sinh hoạt chuyên đề: chuyển đổi số ở thôn",
            "starts_at": iso(now + timedelta(minutes=10)),
            "ends_at": iso(now + timedelta(hours=2)),
            "location": "Hội trường xã Bình Sơn",
        },
    )
    offline = meetings(
        "POST",
        "/meetings",
        json={
            "unit_id": BRANCH,
            "kind": "extraordinary",
            "title": "Họp chi bộ bất thường: chuẩn bị đại hội",
            "starts_at": iso(now + timedelta(days=5)),
            "ends_at": iso(now + timedelta(days=5, hours=1)),
            "location": "Nhà văn hóa thôn Phú Lộc",
        },
    )
    learning = platform.admin("learning")
    learning(
        "POST",
        "/question-banks",
        json={"bank_id": "NH-57", "unit_id": "QNG", "title": "Nghị quyết 57"},
    )
    learning(
        "POST",
        "/question-banks/NH-57/questions",
        json={
            "questions": [
                {
                    "kind": "single",
                    "text": text,
                    "options": [{"text": o, "correct": i == right} for i, o in enumerate(options)],
                }
                for text, options, right in QUESTIONS
            ]
        },
    )
    learning.until(
        "POST",
        "/campaigns",
        json={
            "campaign_id": "QNG-57",
            "unit_id": "QNG",
            "resolution_code": "57-NQ/TW",
            "resolution_title": "Đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
            "title": "Học tập Nghị quyết 57-NQ/TW",
            "deadline": iso(now + timedelta(days=20)),
            "materials": [
                {
                    "material_id": "tom-tat",
                    "kind": "text",
                    "title": "Tóm tắt nội dung Nghị quyết",
                    "body": "Nghị quyết xác định khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá quan trọng hàng đầu.\nMỗi đảng viên gương mẫu ứng dụng công nghệ trong công việc và đời sống.",
                }
            ],
            "quiz": {
                "bank_id": "NH-57",
                "question_count": 3,
                "time_limit_minutes": 10,
                "max_attempts": 2,
                "pass_mark": 60,
            },
        },
    )
    member_learning = platform.api(
        "learning", platform.token([Grant(Role.member, BRANCH)], member_id=mid)
    )
    wait(
        lambda: bool(
            member_learning.client.get("/me/campaigns").status_code == 200
            and member_learning("GET", "/me/campaigns")
        )
    )
    return {
        "member_id": mid,
        "secretary_id": sid,
        "elder_id": elder["member_id"],
        "identity": identity,
        "meetings": meetings,
        "leave": leave["meeting_id"],
        "tonight": tonight["meeting_id"],
        "offline": offline["meeting_id"],
    }


def sign_in(page: Any, web: str, phone: str, temporary: str, chosen: str) -> None:
    """First sign-in with a temporary password, changed at once as the front requires."""
    page.goto(f"{web}/dang-nhap")
    page.fill("#f-phone", phone)
    page.fill("#f-password", temporary)
    page.click("button.primary")
    page.wait_for_url("**/doi-mat-khau")
    page.fill("#f-current_password", temporary)
    page.fill("#f-new_password", chosen)
    page.fill("#f-repeat_password", chosen)
    page.click("button.primary")
    page.wait_for_url(f"{web}/")


# The committee's and boards' tests put their people in a branch of their own, so that the
# seeded branch's roster, feed and campaigns stay as the member and secretary tests expect.
BOARDS_BRANCH = "QNG.BS.AT"


@pytest.fixture(scope="session")
def boards_branch(platform: Platform, seeded: dict[str, Any]) -> str:
    platform.admin("orgtree")(
        "POST",
        "/units",
        json={
            "code": BOARDS_BRANCH,
            "name": "Chi bộ thôn An Thạnh",
            "level": "branch",
            "parent_code": "QNG.BS",
        },
    )
    return BOARDS_BRANCH


def person(number: int, name: str, gender: str = "Nam", **extra: Any) -> dict[str, Any]:
    """A member of the seeded branch (or `branch_id=`) for identity; `number` keeps the card and
    citizen ID unique (the citizen ID's fourth digit is gender and century: 0 a man, 1 a
    woman, 19xx)."""
    return {
        "full_name": name,
        "birth_date": "05/05/1970",
        "gender": gender,
        "status": "official",
        "admitted_on": "01/01/1995",
        "official_on": "01/01/1996",
        "party_card_no": f"5100{number:04d}",
        "citizen_id": f"051{0 if gender == 'Nam' else 1}70{number:06d}",
        "branch_id": BRANCH,
        **extra,
    }


def staff(
    seeded: dict[str, Any],
    number: int,
    name: str,
    phone: str,
    roles: list[tuple[str, str]],
    **extra: Any,
) -> dict[str, Any]:
    """A member with a temporary password (answered as `temporary`) and the given (role,
    unit) grants."""
    identity = seeded["identity"]
    temporary = f"TamThoi{number:04d}"
    record = person(number, name, phone=phone, password=temporary, **extra)
    # identity learns of the branch from org-tree's events: asked again until it has.
    found: dict[str, Any] = identity.until("POST", "/members", json=record)
    for role, unit in roles:
        identity(
            "POST", f"/members/{found['member_id']}/roles", json={"role": role, "unit_id": unit}
        )
    return found | {"temporary": temporary}


def wait(check: Any, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.2)
