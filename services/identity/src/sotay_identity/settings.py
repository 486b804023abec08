from sotay_platform.settings import ServiceSettings

DEV_PII_KEY = "dev-only-identity-key-do-not-use-in-production"


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
    # argon2id cost (RFC 9106 second recommendation); tests lower it.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
