"""The busy first evening of a month, through the web front, with Locust (headless).

Starts the embedded stack and org-tree, identity, meetings, learning and the web front as
uvicorn child processes, loads a province through the services' APIs (members with their
own passwords, tonight's meeting in every branch, a study campaign with a quiz), then lets
N simulated members loose at once, each: opens the sign-in page, signs in, opens home,
opens tonight's meeting, checks in with the code on the screen, starts the quiz and hands
it in. Prints a table per step; `--json PATH` writes {"p95_ms", "requests_per_s", "errors"}.

    python bench/web_load.py            # 200 members
    python bench/web_load.py --quick    # 20 members, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if os.environ.get("SOTAY_WEB_LOAD_PLAN"):
    # Loaded by the locust child: only the simulated member lives here.
    from locust import HttpUser, between, task
    from locust.exception import StopUser

    PLAN = json.loads(Path(os.environ["SOTAY_WEB_LOAD_PLAN"]).read_text())
    MEMBERS = list(PLAN["members"])
    FINISHED: list[str] = []
    random.Random(1).shuffle(MEMBERS)
    CSRF = re.compile(r'name="csrf" value="([^"]+)"')
    QUESTION = re.compile(r'name="question" value="([^"]+)"')
    ACTION = re.compile(r'action="(/hoc-tap/[^"]+/kiem-tra/\d+)"')

    def csrf(text: str) -> str:
        found = CSRF.search(text)
        return found.group(1) if found else ""

    class Member(HttpUser):
        wait_time = between(0.2, 1.0)

        @task
        def evening(self) -> None:
            if not MEMBERS:
                raise StopUser
            me = MEMBERS.pop()
            page = self.client.get("/dang-nhap", name="GET /dang-nhap")
            page = self.client.post(
                "/dang-nhap",
                data={
                    "csrf": csrf(page.text),
                    "phone": me["phone"],
                    "password": me["password"],
                    "next": "/",
                },
                name="POST /dang-nhap → GET /",
            )
            if "Chào đồng chí" not in page.text:
                self.finish(me)
            self.client.get("/", name="GET /")
            meeting = self.client.get(f"/hop/{me['meeting_id']}", name="GET /hop/[id]")
            code = (Path(PLAN["codes"]) / me["meeting_id"]).read_text().strip()
            self.client.post(
                f"/hop/{me['meeting_id']}/diem-danh",
                data={"csrf": csrf(meeting.text), "code": code},
                name="POST /hop/[id]/diem-danh",
            )
            paper = self.client.post(
                f"/hoc-tap/{PLAN['campaign_id']}/kiem-tra",
                data={"csrf": csrf(meeting.text)},
                name="POST /hoc-tap/[id]/kiem-tra",
            )
            action = ACTION.search(paper.text)
            if action:
                answers: list[tuple[str, str]] = [("csrf", csrf(paper.text))]
                for qid in QUESTION.findall(paper.text):
                    options = re.findall(rf'name="q-{re.escape(qid)}" value="([^"]+)"', paper.text)
                    answers += [("question", qid), (f"q-{qid}", options[0])]
                self.client.post(
                    action.group(1), data=answers, name="POST /hoc-tap/[id]/kiem-tra/[n]"
                )
            self.finish(me)

        def finish(self, me: dict[str, Any]) -> None:
            FINISHED.append(me["member_id"])
            if len(FINISHED) == len(PLAN["members"]) and self.environment.runner:
                self.environment.runner.quit()  # every member is through: the evening is over
            raise StopUser


ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "orgtree": "sotay_orgtree.main:create_app",
    "identity": "sotay_identity.main:create_app",
    "meetings": "sotay_meetings.main:create_app",
    "learning": "sotay_learning.main:create_app",
    "web": "sotay_web.main:create_app",
}


def start_platform(
    work: Path, argon2_kib: int
) -> tuple[Any, dict[str, str], list[subprocess.Popen[bytes]], Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from sotay_platform.auth import TokenIssuer
    from sotay_platform.settings import AuthSettings
    from sotay_platform.stack import EmbeddedStack, free_port

    stack = EmbeddedStack(work / "stack").start()
    keys = work / "keys"
    keys.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (keys / "bench.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    issuer = TokenIssuer({"bench": key}, "bench", AuthSettings())
    (work / "jwks.json").write_text(json.dumps(issuer.jwks()))
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES}
    env = {
        **os.environ,
        **stack.env,
        "SOTAY_AUTH_JWKS": str(work / "jwks.json"),
        "SOTAY_IDENTITY_KEYS_DIR": str(keys),
        "SOTAY_IDENTITY_PII_KEY": "bench-only",
        "SOTAY_ARGON2_MEMORY_KIB": str(argon2_kib),
        "SOTAY_CHECKIN_SECRET": "bench-only",
        "SOTAY_CHECKIN_LINK_BASE": f"{urls['web']}/diem-danh",
        "SOTAY_LOG_LEVEL": "WARNING",
        "SOTAY_WEB_ENABLED": json.dumps(["identity", "orgtree", "meetings", "learning"]),
        **{f"SOTAY_WEB_{n.upper()}_URL": u for n, u in urls.items() if n != "web"},
    }
    # While other packages are mid-change in a shared checkout, run the services from a
    # snapshot of theirs (`git archive HEAD` unpacked): its src folders go first.
    if snapshot := os.environ.get("SOTAY_WEB_UPSTREAM_SNAPSHOT"):
        roots = sorted(Path(snapshot).glob("libs/*/src")) + sorted(
            Path(snapshot).glob("services/*/src")
        )
        env["PYTHONPATH"] = os.pathsep.join(str(r) for r in roots)
    processes = []
    for name, app in SERVICES.items():
        port = urls[name].rsplit(":", 1)[1]
        processes.append(
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
                    port,
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env={**env, "SOTAY_DATABASE": f"bench_{name}"},
                stdout=(work / f"{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    import httpx

    for name, url in urls.items():
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not start: see {work}/{name}.log")
            time.sleep(0.3)
    return stack, urls, processes, issuer


def seed(urls: dict[str, str], issuer: Any, members: int) -> dict[str, Any]:
    """The province through the services' APIs; members' passwords set as their own."""
    from concurrent.futures import ThreadPoolExecutor

    from sotay_platform.auth import Grant, Role
    from sotay_web.demo import Api, Demo

    token = issuer.issue("operator:bench", [Grant(Role.system_admin, "TW")], ttl_seconds=3600)
    branches = max(1, members // 20)
    demo = Demo(
        {k: urls[k] for k in ("orgtree", "identity", "meetings", "learning")}, token, branches
    )
    demo.tree()
    identity = Api(urls["identity"], token)
    identity.until("GET", "/members", params={"unit_id": demo.branches[-1][0], "limit": 1})

    def create(n: int) -> dict[str, Any]:
        branch = demo.branches[n % len(demo.branches)][0]
        body = demo._person(n + 1) | {"branch_id": branch, "password": f"Tam{n:06d}a"}
        made = identity("POST", "/members", json=body)
        mine = f"Rieng{n:06d}b"
        signed = Api(urls["identity"])(
            "POST", "/auth/login", json={"phone": body["phone"], "password": body["password"]}
        )
        Api(urls["identity"], signed["access_token"])(
            "POST",
            "/auth/password",
            ok=(204,),
            json={"current_password": body["password"], "new_password": mine},
        )
        return {
            "member_id": made["member_id"],
            "phone": body["phone"],
            "password": mine,
            "branch": branch,
        }

    with ThreadPoolExecutor(4) as pool:
        people = list(pool.map(create, range(members)))
    secretary = issuer.issue(
        "operator:bench-sec",
        [Grant(Role.branch_secretary, b) for b, _ in demo.branches],
        ttl_seconds=7200,
    )
    meetings = Api(urls["meetings"], secretary)
    now = datetime.now(UTC).replace(microsecond=0)
    meeting_of: dict[str, str] = {}
    for branch, _ in demo.branches:
        expected = {p["member_id"] for p in people if p["branch"] == branch}
        deadline = time.monotonic() + 120
        while expected - {
            m["member_id"] for m in meetings("GET", f"/units/{branch}/roster")["members"]
        }:
            assert time.monotonic() < deadline, "meetings did not learn the roster"
            time.sleep(0.5)
        meeting = meetings(
            "POST",
            "/meetings",
            json={
                "unit_id": branch,
                "kind": "regular",
                "title": "Sinh hoạt chi bộ thường kỳ",
                "starts_at": (now + timedelta(minutes=10)).isoformat(),
                "ends_at": (now + timedelta(hours=3)).isoformat(),
                "location": "Nhà văn hóa",
            },
        )
        meeting_of[branch] = meeting["meeting_id"]
    learning = Api(urls["learning"], token)
    learning(
        "POST",
        "/question-banks",
        ok=(200, 201),
        json={"bank_id": "NH", "unit_id": "QNG", "title": "Ngân hàng câu hỏi"},
    )
    learning(
        "POST",
        "/question-banks/NH/questions",
        json={
            "questions": [
                {
                    "kind": "single",
                    "text": f"Câu hỏi {i}",
                    "options": [{"text": "Đúng", "correct": True}, {"text": "Sai"}],
                }
                for i in range(10)
            ]
        },
    )
    learning.until(
        "POST",
        "/campaigns",
        json={
            "campaign_id": "BENCH-57",
            "unit_id": "QNG",
            "resolution_code": "57-NQ/TW",
            "resolution_title": "Nghị quyết 57",
            "deadline": (now + timedelta(days=10)).isoformat(),
            "materials": [{"kind": "text", "title": "Tóm tắt", "body": "Nội dung"}],
            "quiz": {
                "bank_id": "NH",
                "question_count": 5,
                "time_limit_minutes": 10,
                "max_attempts": 3,
                "pass_mark": 60,
            },
        },
    )
    last = Api(
        urls["learning"],
        issuer.issue(
            people[-1]["member_id"],
            [Grant(Role.member, people[-1]["branch"])],
            member_id=people[-1]["member_id"],
        ),
    )
    last.until("GET", "/campaigns/BENCH-57/progress")
    for p in people:
        p["meeting_id"] = meeting_of[p["branch"]]
    return {
        "members": people,
        "campaign_id": "BENCH-57",
        "meetings": meeting_of,
        "secretary": secretary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 members")
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument(
        "--argon2-memory-kib",
        type=int,
        default=65536,
        help="identity's argon2 memory (production: 65536)",
    )
    parser.add_argument("--json", type=Path, help="write p95_ms, requests_per_s, errors here")
    args = parser.parse_args()
    members = 20 if args.quick else args.members
    # A stop (timeout, Ctrl-C) still ends every server this started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="web-load-"))
    stack, urls, processes, issuer = start_platform(work, args.argon2_memory_kib)
    try:
        started = time.monotonic()
        plan = seed(urls, issuer, members)
        print(
            f"set-up: {members} members, {len(plan['meetings'])} meetings, {time.monotonic() - started:.0f} s",
            flush=True,
        )
        figures = run_locust(work, urls, plan, members, args.spawn_rate)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        stack.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def percentile(histogram: dict[float, int], fraction: float) -> float:
    """From locust's response-time histogram (rounded ms → count)."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= fraction * total:
            return ms
    return max(histogram)


def run_locust(
    work: Path, urls: dict[str, str], plan: dict[str, Any], members: int, spawn_rate: float
) -> dict[str, Any]:
    import threading

    import httpx

    # Every branch meets tonight, each with its own code, changing every minute: the room's
    # screen is played by a thread that writes each meeting's current code to a file.
    codes = work / "codes"
    codes.mkdir()
    headers = {"Authorization": f"Bearer {plan['secretary']}"}
    stop = threading.Event()

    def screens() -> None:
        while not stop.is_set():
            for meeting_id in plan["meetings"].values():
                answer = httpx.get(
                    f"{urls['meetings']}/meetings/{meeting_id}/checkin-code", headers=headers
                )
                (codes / f"{meeting_id}.tmp").write_text(answer.json()["code"])
                (codes / f"{meeting_id}.tmp").replace(codes / meeting_id)
            stop.wait(15)

    screen = threading.Thread(target=screens, daemon=True)
    screen.start()
    while len(list(codes.iterdir())) < len(plan["meetings"]):
        time.sleep(0.1)
    plan_file = work / "plan.json"
    plan_file.write_text(
        json.dumps({k: v for k, v in plan.items() if k != "secretary"} | {"codes": str(codes)})
    )
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            __file__,
            "--headless",
            "-u",
            str(members),
            "-r",
            str(spawn_rate),
            "-t",
            "600s",
            "--stop-timeout",
            "30",
            "--host",
            urls["web"],
            "--json-file",  # locust adds ".json"
            str(work / "locust"),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, "SOTAY_WEB_LOAD_PLAN": str(plan_file)},
        check=False,
    )
    elapsed = time.monotonic() - started
    stop.set()
    entries = json.loads((work / "locust.json").read_text())
    print(
        f"\n{'step':<36} {'requests':>9} {'errors':>7} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}"
    )
    everything: dict[float, int] = {}
    requests = errors = 0
    for entry in entries:
        times = {float(k): v for k, v in entry["response_times"].items()}
        for ms, n in times.items():
            everything[ms] = everything.get(ms, 0) + n
        requests += entry["num_requests"]
        errors += entry["num_failures"]
        print(
            f"{entry['name']:<36} {entry['num_requests']:>9} {entry['num_failures']:>7} "
            f"{percentile(times, 0.5):>10.0f} {percentile(times, 0.95):>8.0f} {entry['max_response_time']:>8.0f}"
        )
    figures = {
        "p95_ms": percentile(everything, 0.95),
        "requests_per_s": round(requests / elapsed, 1),
        "errors": errors,
        "members": members,
        "seconds": round(elapsed, 1),
    }
    print(
        f"{'all':<36} {requests:>9} {errors:>7} {percentile(everything, 0.5):>10.0f} "
        f"{figures['p95_ms']:>8.0f}\n\np95 {figures['p95_ms']:.0f} ms · {figures['requests_per_s']} "
        f"requests/s over {elapsed:.0f} s (locust's start included) · {errors} errors"
    )
    return figures


if __name__ == "__main__" and not os.environ.get("SOTAY_WEB_LOAD_PLAN"):
    main()
