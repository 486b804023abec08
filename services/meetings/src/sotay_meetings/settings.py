from pydantic import SecretStr

from sotay_platform.settings import ServiceSettings


class MeetingsSettings(ServiceSettings):
    service_name: str = "meetings"
    database: str = "sotay_meetings"

    # The key that derives each meeting's rotating check-in code (HMAC). Every replica
    # must share it (a Secret in the cluster); empty means a random key per process.
    checkin_secret: SecretStr = SecretStr("")
    checkin_code_digits: int = 6
    checkin_code_step_seconds: int = 60
    # Check-in (and polls) open this long before the start and stay open this long after the end.
    checkin_opens_before_minutes: int = 30
    checkin_closes_after_minutes: int = 30
    checkin_max_wrong_codes: int = 10
    # What the QR code carries: the app opens it and posts the code for the meeting.
    checkin_link_base: str = "https://sotaydangvien.vn/diem-danh"

    # Group commit of check-ins and votes: many new streams in one insert.
    attendance_batch_max: int = 500
    attendance_flushers: int = 2
    # Connections to Redis per process; more concurrent commands wait for one.
    redis_max_connections: int = 100
    # A check-in code typed while the phone was offline (`typed_at`) is checked at the moment
    # it was typed: at most this far ahead of our clock (clamped to now) and this old.
    checkin_typed_at_skew_seconds: int = 120
    checkin_typed_at_max_age_hours: int = 12
