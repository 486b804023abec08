"""Operator commands: signing keys and the bootstrap token.

python -m sotay_identity.cli keygen DIR [--kid 2026-11-25]
    a new P-256 key DIR/<kid>.pem; as the newest file it becomes the signing key
python -m sotay_identity.cli jwks DIR
    the public JWKS of a key directory (what /.well-known/jwks.json serves)
python -m sotay_identity.cli operator-token DIR --subject operator:ten --unit TW
    a short-lived system_admin token, signed with the current key, for the first
    grants on a new installation (whoever can read the key directory can do this)
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from sotay_identity.security import make_issuer, write_key
from sotay_platform.auth import Grant, Role
from sotay_platform.settings import AuthSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sotay_identity.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen")
    keygen.add_argument("directory")
    keygen.add_argument("--kid", default=datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
    jwks = sub.add_parser("jwks")
    jwks.add_argument("directory")
    token = sub.add_parser("operator-token")
    token.add_argument("directory")
    token.add_argument("--subject", required=True)
    token.add_argument("--role", default=Role.system_admin.value)
    token.add_argument("--unit", required=True)
    token.add_argument("--ttl", type=int, default=3600)
    args = parser.parse_args(argv)

    if args.command == "keygen":
        print(write_key(Path(args.directory), args.kid))
    elif args.command == "jwks":
        print(json.dumps(make_issuer(args.directory, AuthSettings()).jwks(), indent=2))
    else:
        if not args.subject.startswith("operator:"):
            parser.error("--subject must start with operator:")
        issuer = make_issuer(args.directory, AuthSettings())
        print(issuer.issue(args.subject, [Grant(Role(args.role), args.unit)], ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
