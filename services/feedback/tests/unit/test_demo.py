"""The demo goes through the handlers and can run twice."""

from sotay_events import InMemoryEventStore
from sotay_feedback.demo import load_demo
from sotay_feedback.handlers import FeedbackService

from .conftest import FakeUnits


async def test_the_demo_loads_once(store: InMemoryEventStore, units: FakeUnits) -> None:
    units.paths.update(
        {
            "QNG": ("TW", "QNG"),
            "QNG.BSON": ("TW", "QNG", "QNG.BSON"),
            "QNG.BSON.AH": ("TW", "QNG", "QNG.BSON", "QNG.BSON.AH"),
            "QNG.BSON.PT": ("TW", "QNG", "QNG.BSON", "QNG.BSON.PT"),
        }
    )
    service = FeedbackService(store, units=units)
    ids = await load_demo(service)
    events = len(store.all_events())
    assert len(ids) == 4 and await load_demo(service) == ids
    assert len(store.all_events()) == events
    types = [e.event_type for e in store.all_events()]
    assert types.count("RoutingTableSet") == 2 and "QaEntryPublished" in types
    assert "FeedbackForwarded" in types
