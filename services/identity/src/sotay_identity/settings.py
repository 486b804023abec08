from dataclasses import dataclass

from sotay_platform.settings import ServiceSettings

DEV_PII_KEY = "dev-only-identity-key-do-not-use-in-production"


@dataclass(frozen=True)
class Limits:
    """Requests allowed to anonymous callers per window, per client address and per phone."""

    window: int
    register_per_client: int
    register_per_phone: int
    login_per_client: int
    login_per_phone: int
    refresh_per_client: int


class IdentitySettings(ServiceSettings):
    service_name: str = "identity"
    database: str = "sotay_identity"
    # PEM files, kid = file stem, newest file signs; empty: one key generated in memory.
    identity_keys_dir: str = ""
    # Secret of the keyed hashes that claim unique citizen IDs, party cards and phones.
    # Must be set (and never change) wherever identity_keys_dir is set.
    identity_pii_key: str = DEV_PII_KEY
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_failure_window_seconds: int = 900
    login_lockout_seconds: int = 900
    # argon2id cost: OWASP's m=19 MiB, t=2, p=1, never lower (tests alone go below it).
    # RFC 9106's 64 MiB, t=3 costs ~190 ms of a core per sign-in, and a branch's members all
    # sign in on the evening of its meeting; this costs ~25 ms and 19 MiB per hash in flight.
    # Changing it is safe: a hash of other parameters is redone at its owner's next sign-in.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # Anonymous endpoints, per hour (SOTAY_IDENTITY_LIMIT_*): every registration costs an
    # argon2 hash, every sign-in a verification.
    identity_limit_window_seconds: int = 3600
    identity_limit_register_per_client: int = 20
    identity_limit_register_per_phone: int = 3
    identity_limit_login_per_client: int = 120
    identity_limit_login_per_phone: int = 20
    identity_limit_refresh_per_client: int = 600

    def limits(self) -> Limits:
        return Limits(
            self.identity_limit_window_seconds,
            self.identity_limit_register_per_client,
            self.identity_limit_register_per_phone,
            self.identity_limit_login_per_client,
            self.identity_limit_login_per_phone,
            self.identity_limit_refresh_per_client,
        )
