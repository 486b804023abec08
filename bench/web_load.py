"""The busy first evening of a month, through the web front, with Locust (headless).

Starts the embedded stack and org-tree, identity, meetings, learning and the web front as
uvicorn child processes, loads a province through the services' APIs (members with their
own passwords, tonight's meeting in every branch, a study campaign with a quiz), then lets
the members arrive: N of them over `--spawn-seconds` (a first evening, not one millisecond),
each reading every page for a few seconds (`--think`) before the next: the sign-in page,
signing in (which lands on home), home, tonight's meeting, checking in with the code on the
room's screen, starting the quiz and handing it in. A page that answers 200 but is not the
one expected (the sign-in form again, an error) counts as an error. Beside the figures, the
bare endpoint in the same run: a static file from the same web front. Identity hashes with
its production argon2 cost; only the per-client sign-in limits are lifted, as in `make run`
(every simulated member comes from 127.0.0.1). Prints a table per step, the errors'
messages and where the CPU went (each process of the stack, locust, and the rest of the
machine: on a shared machine other people's work shows there, and the figures with it);
`--json PATH` writes {"p95_ms", "requests_per_s", "errors", ...}.

    python bench/web_load.py            # 200 members over 60 s
    python bench/web_load.py --quick    # 20 members over 10 s, for a smoke run
    python bench/web_load.py --users 50 --spawn-seconds 20 --think 1 3
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
        # A person reads each page before the next tap.
        wait_time = between(*PLAN["think_seconds"])

        def expect(self, method: str, path: str, name: str, sign: str, **kw: Any) -> Any:
            """A page that must show `sign`: a 200 that is really the sign-in form is an error."""
            with self.client.request(method, path, name=name, catch_response=True, **kw) as page:
                if 200 <= page.status_code < 300 and sign not in (page.text or ""):
                    page.failure(f"no «{sign}» on {page.url}")
            return page

        @task
        def evening(self) -> None:
            if not MEMBERS:
                raise StopUser
            me = MEMBERS.pop()
            try:
                self.steps(me)
            except Exception:  # locust has counted the failed request: this member gives up
                pass
            FINISHED.append(me["member_id"])
            if len(FINISHED) == len(PLAN["members"]) and self.environment.runner:
                self.environment.runner.quit()  # every member is through: the evening is over
            raise StopUser  # each member signs in once

        def steps(self, me: dict[str, Any]) -> None:
            # The bare endpoint, in the same run: what the web front costs doing nothing.
            self.client.get(PLAN["baseline"], name=BASELINE)
            page = self.expect("GET", "/dang-nhap", "GET /dang-nhap", 'name="phone"')
            self.wait()
            self.expect(
                "POST",
                "/dang-nhap",
                "POST /dang-nhap → GET /",
                "Chào đồng chí",
                data={
                    "csrf": csrf(page.text or ""),
                    "phone": me["phone"],
                    "password": me["password"],
                    "next": "/",
                },
            )
            self.wait()
            self.expect("GET", "/", "GET /", "Chào đồng chí")
            self.wait()
            meeting = self.expect("GET", f"/hop/{me['meeting_id']}", "GET /hop/[id]", 'name="code"')
            self.wait()
            code = (Path(PLAN["codes"]) / me["meeting_id"]).read_text().strip()
            self.expect(
                "POST",
                f"/hop/{me['meeting_id']}/diem-danh",
                "POST /hop/[id]/diem-danh",
                'class="notice" role="status"',
                data={"csrf": csrf(meeting.text or ""), "code": code},
            )
            self.wait()
            paper = self.expect(
                "POST",
                f"/hoc-tap/{PLAN['campaign_id']}/kiem-tra",
                "POST /hoc-tap/[id]/kiem-tra",
                'name="question"',
                data={"csrf": csrf(meeting.text or "")},
            )
            action = ACTION.search(paper.text or "")
            if action:
                self.wait()
                answers: list[tuple[str, str]] = [("csrf", csrf(paper.text))]
                for qid in QUESTION.findall(paper.text):
                    options = re.findall(rf'name="q-{re.escape(qid)}" value="([^"]+)"', paper.text)
                    answers += [("question", qid), (f"q-{qid}", options[0])]
                self.expect(
                    "POST",
                    action.group(1),
                    "POST /hoc-tap/[id]/kiem-tra/[n]",
                    "Kết quả:",
                    data=answers,
                )


BASELINE = "baseline: GET /static/app.css"


ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "orgtree": "sotay_orgtree.main:create_app",
    "identity": "sotay_identity.main:create_app",
    "meetings": "sotay_meetings.main:create_app",
    "learning": "sotay_learning.main:create_app",
    "web": "sotay_web.main:create_app",
}


def start_platform(
    work: Path, argon2_kib: int | None
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
        # Every simulated member comes from 127.0.0.1: one client's sign-in limit would
        # stand for the whole province's (the per-phone limits and the lockout stay).
        "SOTAY_IDENTITY_LIMIT_LOGIN_PER_CLIENT": "100000",
        "SOTAY_IDENTITY_LIMIT_REGISTER_PER_CLIENT": "100000",
        "SOTAY_IDENTITY_LIMIT_REFRESH_PER_CLIENT": "100000",
        "SOTAY_CHECKIN_SECRET": "bench-only",
        "SOTAY_CHECKIN_LINK_BASE": f"{urls['web']}/diem-danh",
        "SOTAY_LOG_LEVEL": "WARNING",
        "SOTAY_WEB_ENABLED": json.dumps(["identity", "orgtree", "meetings", "learning"]),
        **{f"SOTAY_WEB_{n.upper()}_URL": u for n, u in urls.items() if n != "web"},
    }
    if argon2_kib:
        env["SOTAY_ARGON2_MEMORY_KIB"] = str(argon2_kib)
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
                    # As the images run them: idle keep-alive connections outlive the
                    # members' think time (uvicorn's 5 s would close one as a request
                    # comes in on it, and the member would see the connection reset).
                    "--timeout-keep-alive",
                    "75",
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
    parser.add_argument("--users", "--members", dest="users", type=int, help="default 200")
    parser.add_argument("--quick", action="store_true", help="20 members over 10 s")
    parser.add_argument(
        "--spawn-seconds", type=float, help="the members arrive over this long (default 60)"
    )
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(2.0, 5.0),
        metavar=("MIN", "MAX"),
        help="seconds a member spends on a page before the next (default 2 5)",
    )
    parser.add_argument(
        "--argon2-memory-kib", type=int, help="override identity's argon2 memory (KiB)"
    )
    parser.add_argument("--json", type=Path, help="write p95_ms, requests_per_s, errors here")
    args = parser.parse_args()
    members = args.users or (20 if args.quick else 200)
    spawn_seconds = args.spawn_seconds or (10.0 if args.quick else 60.0)
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
        watched = {"mongo": stack.processes["mongo"], "kafka": stack.processes["kafka"]}
        watched |= {name: process for name, process in zip(SERVICES, processes, strict=True)}
        figures = run_locust(work, urls, plan, members, spawn_seconds, tuple(args.think), watched)
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
    work: Path,
    urls: dict[str, str],
    plan: dict[str, Any],
    members: int,
    spawn_seconds: float,
    think: tuple[float, ...],
    watched: dict[str, subprocess.Popen[bytes]],
) -> dict[str, Any]:
    import csv
    import threading

    import httpx
    import psutil

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
        json.dumps(
            {k: v for k, v in plan.items() if k != "secretary"}
            | {"codes": str(codes), "think_seconds": list(think), "baseline": "/static/app.css"}
        )
    )
    spawn_rate = members / spawn_seconds
    shape = (
        f"{members} members arriving over {spawn_seconds:.0f} s ({spawn_rate:.1f}/s), "
        f"{think[0]:g}-{think[1]:g} s on each page, each signs in once and leaves"
    )
    print(f"load: {shape}", flush=True)
    # Where the evening's CPU goes, ours and everyone else's on the machine (2 cores).
    processes = {name: psutil.Process(p.pid) for name, p in watched.items()}
    before = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
    time.sleep(10)  # the stack idle (relays, projections, leases polling): the floor
    idle = {name: sum(p.cpu_times()[:2]) - before[name] for name, p in processes.items()}
    print(
        "CPU idle, per 10 s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(idle.items(), key=lambda kv: -kv[1]))
    )
    before = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
    machine = psutil.cpu_times()
    started = time.monotonic()
    locust = subprocess.Popen(
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
            f"{spawn_rate:.3f}",
            "-t",
            "900s",
            "--stop-timeout",
            "30",
            "--host",
            urls["web"],
            "--json-file",  # locust adds ".json"
            str(work / "locust"),
            "--csv",
            str(work / "locust"),
            "--only-summary",
            "--loglevel",
            "ERROR",
        ],
        env={**os.environ, "SOTAY_WEB_LOAD_PLAN": str(plan_file)},
        stdout=subprocess.DEVNULL,
    )
    used = {"locust": 0.0}
    load_generator = psutil.Process(locust.pid)
    while locust.poll() is None:
        try:
            used["locust"] = sum(load_generator.cpu_times()[:2])
        except psutil.Error:
            pass
        time.sleep(0.5)
    used |= {name: sum(p.cpu_times()[:2]) - before[name] for name, p in processes.items()}
    after = psutil.cpu_times()
    busy = sum(
        getattr(after, f) - getattr(machine, f)
        for f in ("user", "system", "nice", "irq", "softirq", "steal")
        if hasattr(after, f)
    )
    elapsed = time.monotonic() - started
    stop.set()
    entries = json.loads((work / "locust.json").read_text())
    print(
        f"\n{'step':<36} {'requests':>9} {'errors':>7} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}"
    )
    everything: dict[float, int] = {}
    requests = errors = 0
    baseline: dict[float, int] = {}

    def row(name: str, count: int, failed: int, times: dict[float, int], top: float) -> None:
        print(
            f"{name:<36} {count:>9} {failed:>7} {percentile(times, 0.5):>10.0f} "
            f"{percentile(times, 0.95):>8.0f} {top:>8.0f}"
        )

    for entry in sorted(entries, key=lambda e: e["name"] == BASELINE):
        times = {float(k): v for k, v in entry["response_times"].items()}
        if entry["name"] == BASELINE:
            baseline = times
            print()
        else:
            for ms, n in times.items():
                everything[ms] = everything.get(ms, 0) + n
            requests += entry["num_requests"]
            errors += entry["num_failures"]
        row(
            entry["name"],
            entry["num_requests"],
            entry["num_failures"],
            times,
            entry["max_response_time"],
        )
    figures = {
        "p95_ms": percentile(everything, 0.95),
        "requests_per_s": round(requests / elapsed, 1),
        "errors": errors,
        "median_ms": percentile(everything, 0.5),
        "baseline_p95_ms": percentile(baseline, 0.95),
        "baseline_median_ms": percentile(baseline, 0.5),
        "members": members,
        "spawn_seconds": spawn_seconds,
        "think_seconds": list(think),
        "seconds": round(elapsed, 1),
    }
    print(
        f"{'all pages (baseline left out)':<36} {requests:>9} {errors:>7} "
        f"{figures['median_ms']:>10.0f} {figures['p95_ms']:>8.0f}\n\n"
        f"p95 {figures['p95_ms']:.0f} ms (bare static file: {figures['baseline_p95_ms']:.0f} ms) · "
        f"{figures['requests_per_s']} requests/s over {elapsed:.0f} s (locust's start included) · "
        f"{errors} errors\nload: {shape}"
    )
    others = busy - sum(used.values())
    figures["cpu_seconds"] = {k: round(v, 1) for k, v in used.items()} | {
        "rest of the machine": round(others, 1)
    }
    print(
        f"CPU seconds over the {elapsed:.0f} s (of {2 * elapsed:.0f} on 2 cores): "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))
        + f"; everything else on the machine {others:.0f}"
    )
    failures = work / "locust_failures.csv"
    if failures.exists():
        with failures.open() as f:
            for failure in csv.DictReader(f):
                print(
                    f"  error ×{failure['Occurrences']}: {failure['Method']} {failure['Name']}: "
                    f"{failure['Error'][:200]}"
                )
    return figures


if __name__ == "__main__" and not os.environ.get("SOTAY_WEB_LOAD_PLAN"):
    main()
