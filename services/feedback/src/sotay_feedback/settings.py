from sotay_platform.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    service_name: str = "feedback"
    database: str = "sotay_feedback"

    # The deadline watcher: how often it looks, how much per look, and how long a
    # replica's silence lets another take the lease over.
    watcher_interval_seconds: float = 60.0
    watcher_batch: int = 200
    watcher_lease_timeout_seconds: float = 180.0

    # Submissions and attachments a member may send per hour (Redis, every replica counts).
    submit_limit_per_hour: int = 30
