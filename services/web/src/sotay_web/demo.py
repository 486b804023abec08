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
from zoneinfo import ZoneInfo

import httpx
from vietnam_provinces import Province, Ward

VN = ZoneInfo("Asia/Ho_Chi_Minh")

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
    "reviewer": "DuyetBai2026",
    "answering": "VanPhong2026",
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
    number: int = 0
    account: bool = False
    kind: str | None = None  # a demo account's kind: its password is known
    token: str | None = None

    def passwords(self) -> list[str]:
        """What this person's password may be: the demo account's, or the one the demo
        chose at the first sign-in, or the temporary one it was created with. Every run
        derives the same, so a second run signs in where the first left off."""
        chosen = [DEMO_PASSWORDS[self.kind]] if self.kind else [f"Rieng{self.phone[-6:]}a"]
        return [*chosen, f"Tam{self.number:06d}a"]


# The extra accounts of the first branch: (kind, number, role, unit; None: the first commune).
EXTRAS = [
    ("province_admin", 900_001, "province_admin", PROVINCE),
    ("editor", 900_002, "editor", PROVINCE),
    ("reviewer", 900_003, "editorial_reviewer", PROVINCE),
    ("answering", 900_004, "committee_admin", None),
]
PIECES: list[dict[str, Any]] = [
    {
        "piece_id": "web-demo-nq57",
        "kind": "resolution",
        "title": "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ, đổi mới "
        "sáng tạo và chuyển đổi số quốc gia",
        "summary": "Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá quan "
        "trọng hàng đầu.",
        "body": "<h2>Quan điểm chỉ đạo</h2><p>Phát triển khoa học, công nghệ, đổi mới sáng tạo "
        "và chuyển đổi số là <strong>đột phá quan trọng hàng đầu</strong>.</p>",
        "document": {
            "number_symbol": "57-NQ/TW",
            "issuing_body": "Bộ Chính trị",
            "issued_on": "22/12/2024",
            "classification": "public",
        },
    },
    {
        "piece_id": "web-demo-chuyen-de-12",
        "kind": "meeting_topic",
        "title": "Chuyên đề sinh hoạt chi bộ: phòng, chống lừa đảo trên không gian mạng",
        "summary": "Gợi ý nội dung sinh hoạt chuyên đề cho các chi bộ.",
        "body": "<p>Không cung cấp mã OTP, mật khẩu cho bất kỳ ai; kiểm tra kỹ đường link "
        "trước khi mở.</p>",
    },
    {
        "piece_id": "web-demo-tin-so-tay",
        "kind": "news",
        "title": "Các chi bộ trong tỉnh dùng Sổ tay đảng viên điện tử trong sinh hoạt",
        "summary": "Điểm danh bằng mã QR, tài liệu họp gửi trước qua ứng dụng.",
        "body": "<p>Đảng viên nhận giấy mời, tài liệu và điểm danh ngay trên điện thoại.</p>",
    },
]
QUESTIONS_ASKED = [
    (
        "web-demo-hoi-1",
        "organisation",
        "Thủ tục chuyển sinh hoạt đảng tạm thời",
        "Tôi đi làm ở tỉnh khác 6 tháng, cần làm thủ tục gì để sinh hoạt đảng tạm thời?",
        "Đồng chí xin giấy giới thiệu sinh hoạt đảng tạm thời của chi bộ, nộp cho đảng ủy "
        "nơi đến trong 30 ngày.",
    ),
    (
        "web-demo-hoi-2",
        "app",
        "Quên mật khẩu Sổ tay thì làm thế nào?",
        "Tôi quên mật khẩu đăng nhập Sổ tay đảng viên, nhờ hướng dẫn cách lấy lại.",
        None,  # still waiting in the committee's queue
    ),
]


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
    existing: dict[str, dict[str, Any]] = field(default_factory=dict)  # by party card
    communes: list[str] = field(default_factory=list)
    created: int = 0

    def admin(self, service: str) -> Api:
        return Api(self.urls[service], self.token)

    def as_person(self, service: str, person: Person) -> Api:
        assert person.token
        return Api(self.urls[service], person.token)

    def has(self, service: str) -> bool:
        return bool(self.urls.get(service))

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
            self.communes.append(code)
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

    def _member(
        self, branch: str, n: int, account: bool, kind: str | None = None, body: Any = None
    ) -> Person:
        """The member numbered `n`, created unless an earlier run did (found by party card)."""
        body = (body or self._person(n)) | {"branch_id": branch}
        row = self.existing.get(body["party_card_no"])
        if row is None:
            if account:
                body["password"] = f"Tam{n:06d}a"
            row = self.admin("identity")("POST", "/members", json=body)
            self.created += 1
        return Person(row["member_id"], body["full_name"], body["phone"], branch, n, account, kind)

    def members(self) -> None:
        identity = self.admin("identity")
        for branch, _ in self.branches:  # each: their tree events travel on different partitions
            found = identity.until("GET", "/members", params={"unit_id": branch, "limit": 500})
            rows = found["items"]
            self.existing |= {r["party_card_no"]: r for r in rows if r.get("party_card_no")}
        # The secretary and two members per branch have accounts. The names come from one
        # seeded generator, drawn in this order on every run: a second run finds the same.
        jobs = [
            (branch, b * 1000 + m + 1, m < 3)
            for b, (branch, _) in enumerate(self.branches)
            for m in range(self.members_per_branch)
        ]
        bodies = {n: self._person(n) for _, n, _ in jobs}
        with ThreadPoolExecutor(4) as pool:
            for person in pool.map(
                lambda j: self._member(j[0], j[1], j[2], body=bodies[j[1]]), jobs
            ):
                self.people.setdefault(person.branch_id, []).append(person)
        total = sum(len(v) for v in self.people.values())
        print(f"đảng viên: {total} ({self.created} mới)", flush=True)

    def roles_and_accounts(self) -> None:
        identity = self.admin("identity")
        first_branch = self.branches[0][0]
        for branch, _ in self.branches:
            people = self.people.get(branch) or []
            if people:
                identity(
                    "POST",
                    f"/members/{people[0].member_id}/roles",
                    ok=(200, 201, 409),
                    json={"role": "branch_secretary", "unit_id": branch},
                )
        crew = self.people[first_branch]
        crew[0].kind, crew[1].kind = "secretary", "member"
        self.accounts = {"secretary": crew[0], "member": crew[1]}
        for kind, n, role, unit in EXTRAS:
            person = self._member(first_branch, n, True, kind)
            identity(
                "POST",
                f"/members/{person.member_id}/roles",
                ok=(200, 201, 409),
                json={"role": role, "unit_id": unit or self.communes[0]},
            )
            self.accounts[kind] = person
        for person in self.accounts.values():
            self.sign_in(person)
        for branch, _ in self.branches:
            for person in self.people.get(branch) or []:
                if person.account and not person.token:
                    self.sign_in(person)

    def sign_in(self, person: Person) -> None:
        """Signs in with the password an earlier run left; a temporary one is changed first,
        as the app makes every member do."""
        identity = Api(self.urls["identity"])
        wanted, *others = person.passwords()
        for password in (wanted, *others):
            try:
                answer = identity(
                    "POST", "/auth/login", json={"phone": person.phone, "password": password}
                )
            except Refused:
                continue
            if password != wanted or answer.get("must_change_password"):
                Api(self.urls["identity"], answer["access_token"])(
                    "POST",
                    "/auth/password",
                    ok=(204,),
                    json={"current_password": password, "new_password": wanted},
                )
                answer = identity(
                    "POST", "/auth/login", json={"phone": person.phone, "password": wanted}
                )
            person.token = answer["access_token"]
            return
        raise Refused(f"không đăng nhập được tài khoản {person.phone}")

    # Meetings ---------------------------------------------------------------------------

    def meetings(self) -> None:
        """This month's meeting, held now: convened to start in a minute, attendance taken in
        the check-in window, closed once started; next month's convened. A meeting an earlier
        run convened is taken up where it stopped."""
        now = datetime.now(UTC).replace(microsecond=0)
        start = now + timedelta(seconds=self.start_in_seconds)
        month = now.astimezone(VN).strftime("%m/%Y")
        held: list[tuple[str, dict[str, Any], Person]] = []
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
            meeting = self._meeting(
                api,
                {
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
                    "document_ids": [PIECES[0]["piece_id"]] if self.has("content") else [],
                },
            )
            self._meeting(
                api,
                {
                    "meeting_id": f"demo-{branch}-{now:%Y%m}-cd",
                    "unit_id": branch,
                    "kind": "thematic",
                    "title": "Sinh hoạt chuyên đề: chuyển đổi số ở cơ sở",
                    "starts_at": (now + timedelta(days=14)).isoformat(),
                    "ends_at": (now + timedelta(days=14, hours=2)).isoformat(),
                    "location": f"Hội trường — {name}",
                    "document_ids": [PIECES[1]["piece_id"]] if self.has("content") else [],
                },
            )
            if not meeting.get("report"):
                held.append((branch, meeting, secretary))
        for branch, meeting, secretary in held:
            if meeting["status"] == "convened":
                self._attendance(branch, meeting["meeting_id"], secretary)
        starts = [datetime.fromisoformat(m["starts_at"]) for _, m, _ in held]
        print(
            f"cuộc họp: {len(held)} chi bộ đang họp; chờ đến giờ bắt đầu để kết thúc…", flush=True
        )
        while starts and datetime.now(UTC) < max(starts) + timedelta(seconds=3):
            time.sleep(1)
        for _branch, meeting, secretary in held:
            meeting_id, api = meeting["meeting_id"], self.as_person("meetings", secretary)
            self._try(
                api,
                "POST",
                f"/meetings/{meeting_id}/minutes",
                json={
                    "content": "Chi bộ kiểm điểm công tác tháng, thống nhất phương hướng tháng tới.",
                    "conclusions": ["Hoàn thành học tập Nghị quyết 57 trước hạn"],
                },
            )
            self._try(api, "POST", f"/meetings/{meeting_id}/close")
            self._try(
                api,
                "POST",
                f"/meetings/{meeting_id}/grade",
                json={"grade": self.rng.choice(["excellent", "good", "good", "average"])},
            )
            self._try(
                api,
                "POST",
                f"/meetings/{meeting_id}/report",
                json={"summary": "Chi bộ sinh hoạt đúng định kỳ."},
            )
        print(
            f"cuộc họp: {len(held)} đã kết thúc, xếp loại và báo cáo; {len(self.branches)} sắp tới",
            flush=True,
        )

    def _meeting(self, api: Api, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = api("GET", f"/meetings/{body['meeting_id']}", ok=(200, 404))
        if "meeting_id" in found:
            return found
        made: dict[str, Any] = api("POST", "/meetings", json=body)
        return made

    def _attendance(self, branch: str, meeting_id: str, secretary: Person) -> None:
        api = self.as_person("meetings", secretary)
        for i, person in enumerate(self.people[branch]):
            if i in (1, 2) and person.token:
                # Two members ask leave; one is approved.
                self._try(
                    self.as_person("meetings", person),
                    "POST",
                    f"/meetings/{meeting_id}/absences",
                    json={"reason": "Đi công tác xa"},
                )
                if i == 1:
                    self._try(
                        api, "POST", f"/meetings/{meeting_id}/absences/{person.member_id}/approve"
                    )
            elif self.rng.random() < 0.85:
                self._try(
                    api,
                    "POST",
                    f"/meetings/{meeting_id}/attendance",
                    json={"member_id": person.member_id},
                )

    @staticmethod
    def _try(api: Api, method: str, path: str, **kw: Any) -> Any:
        """A step an earlier run may have done already: "done before" (409) is fine."""
        try:
            return api(method, path, ok=(200, 201, 204, 409), **kw)
        except Refused as exc:
            print(f"  (bỏ qua: {exc})", file=sys.stderr)
            return None

    # Study ------------------------------------------------------------------------------

    def study(self) -> None:
        learning = self.admin("learning")
        learning(
            "POST",
            "/question-banks",
            ok=(200, 201, 409),
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
        found = learning("GET", "/campaigns/QNG-57-2026", ok=(200, 404))
        if "campaign_id" not in found:
            learning.until("POST", "/campaigns", json=self._campaign())
        studied = 0
        for branch, _ in self.branches:
            for person in self.people.get(branch) or []:
                if not person.token or person is self.accounts.get("member"):
                    continue
                api = self.as_person("learning", person)
                try:
                    mine = api.until("GET", "/me/campaigns", timeout=60)
                    progress = next(
                        (
                            c.get("progress") or {}
                            for c in mine
                            if c["campaign_id"] == "QNG-57-2026"
                        ),
                        {},
                    )
                    if (progress.get("quiz") or {}).get("passed"):
                        studied += 1
                        continue
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

    def _campaign(self) -> dict[str, Any]:
        return {
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
        }

    # Documents and feedback -------------------------------------------------------------

    def documents(self) -> None:
        """Published by the demo editor, approved by the demo reviewer (never the same)."""
        editor = self.as_person("content", self.accounts["editor"])
        reviewer = self.as_person("content", self.accounts["reviewer"])
        published = 0
        for piece in PIECES:
            found = editor.until("POST", "/pieces", json=piece | {"unit_id": PROVINCE})
            if found["status"] == "draft":
                found = editor("POST", f"/pieces/{piece['piece_id']}/submit")
            if found["status"] == "submitted":
                reviewer("POST", f"/pieces/{piece['piece_id']}/approve", json={})
            published += 1
        print(f"văn bản: {published} văn bản đã đăng", flush=True)

    def feedback(self) -> None:
        """Members of the first commune ask; its committee office answers one publicly."""
        commune_branches = [b for b, _ in self.branches if b.startswith(self.communes[0] + ".")]
        body = self.as_person("feedback", self.accounts["answering"])
        answered = 0
        for (fid, subject, title, question, answer), branch in zip(
            QUESTIONS_ASKED, commune_branches, strict=False
        ):
            asker = next(p for p in self.people[branch][1:] if p.token)
            sent = self.as_person("feedback", asker).until(
                "POST",
                "/feedback",
                json={
                    "feedback_id": fid,
                    "kind": "question",
                    "subject": subject,
                    "addressed_to": "committee",
                    "title": title,
                    "text": question,
                    "public_allowed": True,
                },
            )
            if answer and not sent.get("answers"):
                self._try(
                    body,
                    "POST",
                    f"/feedback/{fid}/answer",
                    json={"text": answer, "visibility": "public", "question": title},
                )
            answered += bool(answer)
        print(f"góp ý: {len(QUESTIONS_ASKED)} câu hỏi, {answered} đã trả lời công khai", flush=True)

    def run(self) -> None:
        self.tree()
        self.members()
        self.roles_and_accounts()
        if self.has("content"):
            self.documents()
        self.meetings()
        self.study()
        if self.has("feedback"):
            self.feedback()


def wait(check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the services did not catch up in time")
        time.sleep(0.5)


LABELS = {
    "member": "Đảng viên",
    "secretary": "Bí thư chi bộ",
    "province_admin": "Quản trị tỉnh",
    "editor": "Biên tập viên",
    "reviewer": "Duyệt bài",
    "answering": "Văn phòng đảng ủy xã (trả lời góp ý)",
}
# Who the demo accounts are: fixed numbers of the first branch (see `members`, `EXTRAS`).
ACCOUNT_PHONES = {
    "member": "0915000002",
    "secretary": "0915000001",
    **{kind: f"0915{n:06d}" for kind, n, _, _ in EXTRAS},
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
    parser.add_argument("--content", default="http://127.0.0.1:8004")
    parser.add_argument("--learning", default="http://127.0.0.1:8005")
    parser.add_argument("--feedback", default="http://127.0.0.1:8006")
    parser.add_argument("--branches", type=int, default=24)
    parser.add_argument("--members-per-branch", type=int, default=12)
    parser.add_argument("--start-in-seconds", type=int, default=75, help="this month's meeting")
    args = parser.parse_args(argv)
    names = ("orgtree", "identity", "meetings", "content", "learning", "feedback")
    urls = {k: getattr(args, k) for k in names if live(getattr(args, k))}
    demo = Demo(urls, args.token, args.branches, args.members_per_branch, args.start_in_seconds)
    demo.run()
    print_accounts(demo, args.web)


def live(url: str) -> bool:
    """Whether a service answers (content and feedback are optional in `make run`)."""
    try:
        return httpx.get(f"{url}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def print_accounts(demo: Demo, web: str) -> None:
    print(f"\nSổ tay đảng viên: {web}")
    print("Tài khoản trình diễn (đăng nhập bằng số điện thoại):")
    for kind, phone in ACCOUNT_PHONES.items():
        person = demo.accounts.get(kind)
        name = person.full_name if person else ""
        print(f"  {LABELS[kind]:<15} {phone}  mật khẩu {DEMO_PASSWORDS[kind]:<14} {name}")


if __name__ == "__main__":
    main()
