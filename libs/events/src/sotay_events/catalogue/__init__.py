"""Every event payload the platform knows, registered in CATALOGUE on import."""

import sotay_events.catalogue.content
import sotay_events.catalogue.feedback  # noqa: F401  (registers its events)
from sotay_events.catalogue import identity, learning, meetings, org_tree, reporting
from sotay_events.catalogue.base import CATALOGUE, DomainEvent, EventCatalogue, UnknownEvent

__all__ = [
    "CATALOGUE",
    "DomainEvent",
    "EventCatalogue",
    "UnknownEvent",
    "identity",
    "learning",
    "meetings",
    "org_tree",
    "reporting",
]
