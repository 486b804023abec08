"""Kafka topics: one per producing service, keyed by aggregate id."""

ORG_TREE = "sotay.org-tree.events"
IDENTITY = "sotay.identity.events"
MEETINGS = "sotay.meetings.events"
CONTENT = "sotay.content.events"
LEARNING = "sotay.learning.events"
FEEDBACK = "sotay.feedback.events"
REPORTING = "sotay.reporting.events"
USAGE_STREAM = "sotay.reporting.usage"


def dead_letter(topic: str) -> str:
    """Where a consumer parks what it can never apply from `topic`."""
    return f"{topic}.dlq"


PLATFORM_TOPICS = [
    ORG_TREE,
    IDENTITY,
    MEETINGS,
    CONTENT,
    LEARNING,
    FEEDBACK,
    REPORTING,
    USAGE_STREAM,
]
ALL_TOPICS = PLATFORM_TOPICS + [dead_letter(t) for t in PLATFORM_TOPICS]
