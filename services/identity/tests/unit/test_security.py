"""Signing keys from a directory, rotation without logging anyone out."""

import os
from pathlib import Path

import pytest

from sotay_identity.cli import main as cli
from sotay_identity.security import (
    Lockout,
    MemoryCounters,
    Passwords,
    SigningKeyError,
    load_signing_keys,
    make_issuer,
    write_key,
)
from sotay_platform.auth import Grant, Role, TokenVerifier
from sotay_platform.errors import Unauthorized
from sotay_platform.settings import AuthSettings


def test_newest_file_signs_and_every_key_is_published(tmp_path: Path) -> None:
    old = write_key(tmp_path, "2026-01")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    before = make_issuer(str(tmp_path), AuthSettings())
    token = before.issue("m1", [Grant(Role.member, "CB1")], member_id="m1")
    write_key(tmp_path, "2026-06")
    after = make_issuer(str(tmp_path), AuthSettings())
    assert after.current_kid == "2026-06"
    assert {k["kid"] for k in after.jwks()["keys"]} == {"2026-01", "2026-06"}
    verifier = TokenVerifier(AuthSettings(), after.jwks())
    assert verifier.verify(token).member_id == "m1"  # the old token still verifies
    assert verifier.verify(after.issue("m2", [])).subject == "m2"
    old.unlink()  # once old tokens expired, the old key leaves the JWKS
    retired = TokenVerifier(AuthSettings(), make_issuer(str(tmp_path), AuthSettings()).jwks())
    with pytest.raises(Unauthorized):
        retired.verify(token)


def test_same_mtime_falls_back_to_the_name(tmp_path: Path) -> None:
    for kid in ("2026-02", "2026-01"):
        os.utime(write_key(tmp_path, kid), (1_700_000_000, 1_700_000_000))
    assert load_signing_keys(str(tmp_path))[1] == "2026-02"


def test_a_directory_without_keys_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError):
        load_signing_keys(str(tmp_path))


def test_no_directory_generates_a_key() -> None:
    assert make_issuer("", AuthSettings()).current_kid.startswith("dev-")


def test_cli_keygen_and_operator_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(["keygen", str(tmp_path), "--kid", "k1"])
    cli(["operator-token", str(tmp_path), "--subject", "operator:an", "--unit", "TW"])
    token = capsys.readouterr().out.strip().splitlines()[-1]
    verifier = TokenVerifier(AuthSettings(), make_issuer(str(tmp_path), AuthSettings()).jwks())
    principal = verifier.verify(token)
    assert principal.subject == "operator:an"
    assert principal.has_role(Role.system_admin)


async def test_passwords_and_lockout() -> None:
    passwords = Passwords(time_cost=1, memory_kib=8192, parallelism=1)
    hashed = await passwords.hash("matkhau123")
    assert await passwords.verify(hashed, "matkhau123")
    assert not await passwords.verify(hashed, "matkhau124")
    assert not await passwords.verify(None, "matkhau123")
    lockout = Lockout(MemoryCounters(), max_failures=2, window=60, lock_seconds=30)
    assert await lockout.failed("k") == (1, 0)
    assert await lockout.failed("k") == (0, 30)
    assert 0 < await lockout.locked_for("k") <= 30
    await lockout.clear("k")
    assert await lockout.locked_for("k") == 0
