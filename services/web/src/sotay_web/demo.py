"""The living demo: a province loaded through the services' own public APIs, so every
figure on every screen is real.

    python -m sotay_web.demo --token ADMIN_TOKEN [--web http://127.0.0.1:8000] [--branches 24]

Quảng Ngãi with real ward names (PyPI `vietnam-provinces`, the 2025 merger), tens of
branches and hundreds of members, this month's branch meetings held (attendance recorded,
absences asked and decided, minutes, grade, report), next meetings convened, a study
campaign with its quiz in progress, and four demo accounts with known passwords, printed at
the end. Running it again changes nothing that exists (units, members and campaigns are
looked up by their codes; a second run only adds what is missing).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from vietnam_provinces import Province, Ward

PROVINCE_CODE = 51  # Quảng Ngãi (after the 2025 merger, with Kon Tum)
PROVINCE = "QNG"
CCCD_PROVINCE = "051"
SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Phan", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"]
MIDDLE = {"Nam": ["Văn", "Đức", "Minh", "Quang", "Hữu"], "Nữ": ["Thị", "Thị", "Ngọc", "Thu", "Kim"]}
GIVEN = {
    "Nam": [
        "An",
        "Bình",
        "Cường",
        "Dũng",
        "Hải",
        "Hùng",
        "Khánh",
        "Long",
        "Nam",
        "Phúc",
        "Quân",
        "Sơn",
        "Thắng",
        "Trung",
        "Việt",
    ],
    "Nữ": [
        "Anh",
        "Cúc",
        "Dung",
        "Hà",
        "Hạnh",
        "Hoa",
        "Hương",
        "Lan",
        "Liên",
        "Mai",
        "Nga",
        "Phương",
        "Thảo",
        "Trang",
        "Yến",
    ],
}
BRANCH_NAMES = [
    "Chi bộ thôn An Hải",
    "Chi bộ thôn Phước Thiện",
    "Chi bộ khu dân cư số 1",
    "Chi bộ khu dân cư số 2",
    "Chi bộ thôn Tân Hy",
    "Chi bộ thôn Đông Yên",
    "Chi bộ Trường THCS Nguyễn Nghiêm",
    "Chi bộ Trạm Y tế",
]
DEMO_PASSWORDS = {
    "member": "DangVien2026",
    "secretary": "BiThu2026",
    "province_admin": "TinhUy2026",
    "editor": "BienTap2026",
}
QUESTIONS = [
    (
        "Nghị quyết 57-NQ/TW xác định lĩnh vực nào là đột phá quan trọng hàng đầu?",
        ["Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số", "Du lịch", "Xây dựng cơ bản"],
    ),
    (
        "Chuyển đổi số lấy ai làm trung tâm?",
        ["Người dân và doanh nghiệp", "Cơ quan nhà nước", "Nhà đầu tư nước ngoài"],
    ),
    (
        "Đảng viên cần làm gì sau khi học tập nghị quyết?",
        [
            "Viết bài thu hoạch và xây dựng kế hoạch hành động",
            "Không cần làm gì",
            "Chỉ đọc tóm tắt",
        ],
    ),
    (
        "Ai là chủ thể của chuyển đổi số ở cơ sở?",
        [
            "Người dân, cán bộ, đảng viên ở cơ sở",
            "Chỉ doanh nghiệp công nghệ",
            "Chỉ cơ quan Trung ương",
        ],
    ),
    (
        "Sinh hoạt chi bộ thường kỳ được tổ chức bao lâu một lần?",
        ["Mỗi tháng một lần", "Mỗi năm một lần", "Khi có việc"],
    ),
]


class Refused(Exception):
    pass


class Api:
    def __init__(self, base: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=60)

    def __call__(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        response = self.client.request(method, path, **kw)
        if response.status_code not in ok:
            raise Refused(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def until(self, method: str, path: str, timeout: float = 120, **kw: Any) -> Any:
        """The services learn of each other's facts through Kafka: ask again until ready."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self(method, path, **kw)
            except Refused:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@dataclass
class Person:
    member_id: str
    full_name: str
    phone: str
    branch_id: str
    password: str | None = None
    token: str | None = None


@dataclass
class Demo:
    urls: dict[str, str]
    token: str
    branches_wanted: int = 24
    members_per_branch: int = 12
    start_in_seconds: int = 75
    rng: random.Random = field(default_factory=lambda: random.Random(2026))
    branches: list[tuple[str, str]] = field(default_factory=list)
    people: dict[str, list[Person]] = field(default_factory=dict)
    accounts: dict[str, Person] = field(default_factory=dict)

    def admin(self, service: str) -> Api:
        return Api(self.urls[service], self.token)

    def as_person(self, service: str, person: Person) -> Api:
        assert person.token
        return Api(self.urls[service], person.token)

    # The tree ---------------------------------------------------------------------------

    def tree(self) -> None:
        tree = self.admin("orgtree")
        province = next(p for p in Province.iter_all() if int(p.code.value) == PROVINCE_CODE)
        tree(
            "POST",
            "/units",
            ok=(200, 201, 409),
            json={"code": "TW", "name": "Trung ương", "level": "central"},
        )
        tree(
            "POST",
            "/units",
            ok=(200, 201, 409),
            json={
                "code": PROVINCE,
                "name": f"Đảng bộ tỉnh {province.name}",
                "level": "province",
                "parent_code": "TW",
            },
        )
        wards = [w for w in Ward.iter_all() if int(w.province_code.value) == PROVINCE_CODE][::7]
        communes = max(1, self.branches_wanted // 6)
        for ward in wards[:communes]:
            code = f"{PROVINCE}.W{int(ward.code.value):05d}"
            tree(
                "POST",
                "/units",
                ok=(200, 201, 409),
                json={
                    "code": code,
                    "name": f"Đảng bộ {ward.name[0].lower()}{ward.name[1:]}",
                    "level": "commune",
                    "parent_code": PROVINCE,
                },
            )
            for b, name in enumerate(BRANCH_NAMES[: self.branches_wanted // communes]):
                branch = f"{code}.CB{b + 1:02d}"
                tree(
                    "POST",
                    "/units",
                    ok=(200, 201, 409),
                    json={"code": branch, "name": name, "level": "branch", "parent_code": code},
                )
                self.branches.append((branch, name))
        print(
            f"cây tổ chức: tỉnh {province.name}, {communes} xã/phường, {len(self.branches)} chi bộ",
            flush=True,
        )

    # Members ----------------------------------------------------------------------------

    def _person(self, n: int) -> dict[str, Any]:
        gender = "Nữ" if n % 2 else "Nam"
        born = 1950 + (n * 7) % 50
        name = f"{self.rng.choice(SURNAMES)} {self.rng.choice(MIDDLE[gender])} {self.rng.choice(GIVEN[gender])}"
        century_gender = (
            ("1" if gender == "Nữ" else "0") if born < 2000 else ("3" if gender == "Nữ" else "2")
        )
        admitted = min(max(born + 20, 1975) + n % 20, 2024)
        return {
            "full_name": name,
            "birth_date": f"{1 + n % 28:02d}/{1 + n % 12:02d}/{born}",
            "gender": gender,
            "status": "official",
            "admitted_on": f"{1 + (n * 3) % 28:02d}/{1 + (n * 5) % 12:02d}/{admitted}",
            "official_on": f"{1 + (n * 3) % 28:02d}/{1 + (n * 5) % 12:02d}/{admitted + 1}",
            "party_card_no": f"51{n:06d}",
            "citizen_id": f"{CCCD_PROVINCE}{century_gender}{born % 100:02d}{n:06d}",
            "phone": f"0915{n:06d}",
        }

    def members(self) -> None:
        identity = self.admin("identity")
        identity.until("GET", f"/members?unit_id={self.branches[-1][0]}&limit=1")
        existing = {}
        for branch, _ in self.branches:
            rows = identity("GET", "/members", params={"unit_id": branch, "limit": 500})["items"]
            existing[branch] = rows

        def create(job: tuple[str, int, bool]) -> Person:
            branch, n, with_account = job
            body = self._person(n) | {"branch_id": branch}
            password = f"Tam{n:06d}a" if with_account else None
            if password:
                body["password"] = password
            made = identity("POST", "/members", ok=(201, 409), json=body)
            if "member_id" not in made:  # already there from an earlier run
                return Person("", body["full_name"], body["phone"], branch, None)
            return Person(made["member_id"], body["full_name"], body["phone"], branch, password)

        jobs = []
        for b, (branch, _) in enumerate(self.branches):
            if existing[branch]:
                continue
            for m in range(self.members_per_branch):
                n = b * 1000 + m + 1
                # The secretary and two members per branch have accounts (they sign in).
                jobs.append((branch, n, m < 3))
        with ThreadPoolExecutor(4) as pool:
            for person in pool.map(create, jobs):
                self.people.setdefault(person.branch_id, []).append(person)
        for branch, rows in existing.items():
            if rows:
                self.people[branch] = [
                    Person(r["member_id"], r["full_name"], "", branch) for r in rows
                ]
        total = sum(len(v) for v in self.people.values())
        print(f"đảng viên: {total} ({len(jobs)} mới)", flush=True)

    def roles_and_accounts(self) -> None:
        identity = self.admin("identity")
        first_branch = self.branches[0][0]
        for branch, _ in self.branches:
            people = self.people.get(branch) or []
            if people and people[0].member_id:
                identity(
                    "POST",
                    f"/members/{people[0].member_id}/roles",
                    ok=(200, 201, 409),
                    json={"role": "branch_secretary", "unit_id": branch},
                )
        crew = self.people.get(first_branch) or []
        if len(crew) < 2 or not all(p.password for p in crew[:2]):
            print("tài khoản mẫu đã có từ lần chạy trước", flush=True)
            return
        admin_person = self._extra(first_branch, 900_001, "province_admin")
        editor = self._extra(first_branch, 900_002, "editor")
        identity(
            "POST",
            f"/members/{admin_person.member_id}/roles",
            ok=(200, 201, 409),
            json={"role": "province_admin", "unit_id": PROVINCE},
        )
        identity(
            "POST",
            f"/members/{editor.member_id}/roles",
            ok=(200, 201, 409),
            json={"role": "editor", "unit_id": PROVINCE},
        )
        self.accounts = {
            "secretary": crew[0],
            "member": crew[1],
            "province_admin": admin_person,
            "editor": editor,
        }
        for kind, person in self.accounts.items():
            self.sign_in(person, DEMO_PASSWORDS[kind])
        for branch, _ in self.branches:
            for person in (self.people.get(branch) or [])[:3]:
                if person.password and not person.token:
                    self.sign_in(person)

    def _extra(self, branch: str, n: int, kind: str) -> Person:
        body = self._person(n) | {"branch_id": branch, "password": f"Tam{n:06d}a"}
        made = self.admin("identity")("POST", "/members", json=body)
        person = Person(
            made["member_id"], body["full_name"], body["phone"], branch, body["password"]
        )
        self.people[branch].append(person)
        return person

    def sign_in(self, person: Person, new_password: str | None = None) -> None:
        """Signs in; a temporary password is changed first (to `new_password`, or to one of
        the member's own), as the app makes every member do."""
        identity = Api(self.urls["identity"])
        login = {"phone": person.phone, "password": person.password}
        answer = identity("POST", "/auth/login", json=login)
        if answer.get("must_change_password") or new_password:
            new = new_password or f"Rieng{person.phone[-6:]}a"
            Api(self.urls["identity"], answer["access_token"])(
                "POST",
                "/auth/password",
                ok=(204,),
                json={"current_password": person.password, "new_password": new},
            )
            person.password = new
            answer = identity("POST", "/auth/login", json=login | {"password": new})
        person.token = answer["access_token"]

    # Meetings ---------------------------------------------------------------------------

    def meetings(self) -> None:
        """This month's meeting, held now: convened to start in a minute, attendance taken in
        the check-in window, closed once started; next month's convened."""
        now = datetime.now(UTC).replace(microsecond=0)
        start = now + timedelta(seconds=self.start_in_seconds)
        held: list[tuple[str, str, Person]] = []
        for branch, name in self.branches:
            people = self.people.get(branch) or []
            secretary = people[0] if people else None
            if not secretary or not secretary.token:
                continue
            api = self.as_person("meetings", secretary)
            expected = {p.member_id for p in people}

            def roster_ready(
                api: Api = api, branch: str = branch, expected: set[str] = expected
            ) -> bool:
                found = {m["member_id"] for m in api("GET", f"/units/{branch}/roster")["members"]}
                return expected <= found

            wait(roster_ready)
            month = now.astimezone().strftime("%m/%Y")
            meeting = api(
                "POST",
                "/meetings",
                json={
                    "meeting_id": f"demo-{branch}-{now:%Y%m}",
                    "unit_id": branch,
                    "kind": "regular",
                    "title": f"Sinh hoạt chi bộ thường kỳ tháng {month}",
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=2)).isoformat(),
                    "location": f"Nhà văn hóa — {name}",
                    "agenda": [
                        "Kiểm điểm công tác tháng",
                        "Phương hướng nhiệm vụ tháng tới",
                        "Học tập Nghị quyết 57-NQ/TW",
                    ],
                },
            )
            api(
                "POST",
                "/meetings",
                json={
                    "meeting_id": f"demo-{branch}-{now:%Y%m}-cd",
                    "unit_id": branch,
                    "kind": "thematic",
                    "title": "Sinh hoạt chuyên đề: chuyển đổi số ở cơ sở",
                    "starts_at": (now + timedelta(days=14)).isoformat(),
                    "ends_at": (now + timedelta(days=14, hours=2)).isoformat(),
                    "location": f"Hội trường — {name}",
                },
            )
            held.append((branch, meeting["meeting_id"], secretary))
        for branch, meeting_id, secretary in held:
            api = self.as_person("meetings", secretary)
            people = self.people[branch]
            for i, person in enumerate(people):
                if i in (1, 2) and person.token:
                    # Two members ask leave; one is approved.
                    self.as_person("meetings", person)(
                        "POST",
                        f"/meetings/{meeting_id}/absences",
                        ok=(201, 409),
                        json={"reason": "Đi công tác xa"},
                    )
                    if i == 1:
                        api(
                            "POST",
                            f"/meetings/{meeting_id}/absences/{person.member_id}/approve",
                            ok=(200, 409),
                        )
                elif self.rng.random() < 0.85:
                    api(
                        "POST",
                        f"/meetings/{meeting_id}/attendance",
                        ok=(200, 201),
                        json={"member_id": person.member_id},
                    )
        wait_until = start + timedelta(seconds=3)
        print(
            f"cuộc họp: {len(held)} chi bộ đang họp; chờ đến giờ bắt đầu để kết thúc…", flush=True
        )
        while datetime.now(UTC) < wait_until:
            time.sleep(1)
        for _branch, meeting_id, secretary in held:
            api = self.as_person("meetings", secretary)
            api(
                "POST",
                f"/meetings/{meeting_id}/minutes",
                json={
                    "content": "Chi bộ kiểm điểm công tác tháng, thống nhất phương hướng tháng tới.",
                    "conclusions": ["Hoàn thành học tập Nghị quyết 57 trước hạn"],
                },
            )
            api("POST", f"/meetings/{meeting_id}/close", ok=(200, 409))
            api(
                "POST",
                f"/meetings/{meeting_id}/grade",
                ok=(200, 409),
                json={"grade": self.rng.choice(["excellent", "good", "good", "average"])},
            )
            api(
                "POST",
                f"/meetings/{meeting_id}/report",
                ok=(200, 201, 409),
                json={"summary": "Chi bộ sinh hoạt đúng định kỳ."},
            )
        print(
            f"cuộc họp: {len(held)} đã kết thúc, xếp loại và báo cáo; {len(held)} sắp tới",
            flush=True,
        )

    # Study ------------------------------------------------------------------------------

    def study(self) -> None:
        learning = self.admin("learning")
        learning(
            "POST",
            "/question-banks",
            ok=(200, 201),
            json={
                "bank_id": "QNG-NH-57",
                "unit_id": PROVINCE,
                "title": "Ngân hàng câu hỏi Nghị quyết 57-NQ/TW",
            },
        )
        bank = learning("GET", "/question-banks/QNG-NH-57/questions")
        if not bank["questions"]:
            learning(
                "POST",
                "/question-banks/QNG-NH-57/questions",
                json={
                    "questions": [
                        {
                            "kind": "single",
                            "text": t,
                            "options": [{"text": o, "correct": i == 0} for i, o in enumerate(opts)],
                        }
                        for t, opts in QUESTIONS
                    ]
                },
            )
            bank = learning("GET", "/question-banks/QNG-NH-57/questions")
        key = {
            q["question_id"]: [o["option_id"] for o in q["options"] if o["correct"]]
            for q in bank["questions"]
        }
        learning.until(
            "POST",
            "/campaigns",
            json={
                "campaign_id": "QNG-57-2026",
                "unit_id": PROVINCE,
                "resolution_code": "57-NQ/TW",
                "resolution_title": "Đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
                "title": "Học tập, quán triệt Nghị quyết 57-NQ/TW",
                "deadline": (datetime.now(UTC) + timedelta(days=21)).isoformat(),
                "materials": [
                    {
                        "material_id": "tom-tat",
                        "kind": "text",
                        "title": "Tóm tắt nội dung Nghị quyết",
                        "body": "Nghị quyết xác định khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá quan trọng hàng đầu.\nMỗi cán bộ, đảng viên gương mẫu ứng dụng công nghệ số trong công việc và đời sống.",
                    },
                    {
                        "material_id": "video",
                        "kind": "link",
                        "title": "Bài giảng chuyên đề",
                        "url": "https://dangcongsan.vn",
                        "required": False,
                    },
                ],
                "quiz": {
                    "bank_id": "QNG-NH-57",
                    "question_count": 5,
                    "time_limit_minutes": 15,
                    "max_attempts": 3,
                    "pass_mark": 60,
                },
            },
        )
        studied = 0
        for branch, _ in self.branches:
            for person in (self.people.get(branch) or [])[:3]:
                if not person.token or person is self.accounts.get("member"):
                    continue
                api = self.as_person("learning", person)
                try:
                    api.until(
                        "POST", "/campaigns/QNG-57-2026/materials/tom-tat/studied", timeout=60
                    )
                    paper = api("POST", "/campaigns/QNG-57-2026/quiz/attempts", ok=(200, 201))
                    answers = [
                        {"question_id": q["question_id"], "option_ids": key[q["question_id"]]}
                        for q in paper["questions"]
                    ]
                    api(
                        "POST",
                        f"/campaigns/QNG-57-2026/quiz/attempts/{paper['attempt']}/answers",
                        json={"answers": answers},
                    )
                    studied += 1
                except Refused as exc:
                    print(f"  (bỏ qua: {exc})", file=sys.stderr)
        print(f"học tập: đợt Nghị quyết 57-NQ/TW, {studied} đảng viên đã làm bài", flush=True)

    def run(self) -> None:
        self.tree()
        self.members()
        self.roles_and_accounts()
        self.meetings()
        self.study()


def wait(check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the services did not catch up in time")
        time.sleep(0.5)


# Who the demo accounts are: fixed numbers of the first branch (see `members`, `_extra`).
ACCOUNT_PHONES = {
    "member": "0915000002",
    "secretary": "0915000001",
    "province_admin": "0915900001",
    "editor": "0915900002",
}
LABELS = {
    "member": "Đảng viên",
    "secretary": "Bí thư chi bộ",
    "province_admin": "Quản trị tỉnh",
    "editor": "Biên tập viên",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Nạp dữ liệu trình diễn qua API của các dịch vụ")
    parser.add_argument(
        "--token", required=True, help="mã truy cập quản trị hệ thống (system_admin)"
    )
    parser.add_argument("--web", default="http://127.0.0.1:8000")
    parser.add_argument("--orgtree", default="http://127.0.0.1:8001")
    parser.add_argument("--identity", default="http://127.0.0.1:8002")
    parser.add_argument("--meetings", default="http://127.0.0.1:8003")
    parser.add_argument("--learning", default="http://127.0.0.1:8005")
    parser.add_argument("--branches", type=int, default=24)
    parser.add_argument("--members-per-branch", type=int, default=12)
    parser.add_argument("--start-in-seconds", type=int, default=75, help="this month's meeting")
    args = parser.parse_args(argv)
    urls = {k: getattr(args, k) for k in ("orgtree", "identity", "meetings", "learning")}
    demo = Demo(urls, args.token, args.branches, args.members_per_branch, args.start_in_seconds)
    demo.run()
    print_accounts(demo, args.web)


def print_accounts(demo: Demo, web: str) -> None:
    print(f"\nSổ tay đảng viên: {web}")
    print("Tài khoản trình diễn (đăng nhập bằng số điện thoại):")
    for kind, phone in ACCOUNT_PHONES.items():
        person = demo.accounts.get(kind)
        name = person.full_name if person else ""
        print(f"  {LABELS[kind]:<15} {phone}  mật khẩu {DEMO_PASSWORDS[kind]:<14} {name}")


if __name__ == "__main__":
    main()
