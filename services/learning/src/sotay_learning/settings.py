from sotay_platform.settings import ServiceSettings


class LearningSettings(ServiceSettings):
    service_name: str = "learning"
    database: str = "sotay_learning"
    # How often the roll-up worker folds branch counters into unit results (seconds).
    rollup_interval: float = 5.0
    # How long a silent roll-up worker keeps its lease before another replica takes over (s).
    rollup_lease_seconds: float = 30.0
    # Network slack accepted after a quiz's time limit before a paper counts as late.
    submit_grace_seconds: int = 15
