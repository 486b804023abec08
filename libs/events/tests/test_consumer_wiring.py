"""The Kafka wiring of a projection, on FastStream's in-memory TestKafkaBroker: no servers."""

from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker, TestKafkaBroker

from sotay_events import EventEnvelope, topics
from sotay_events.consumer import Incoming, subscribe_projection


class RecordingRunner:
    """Stands in for ProjectionRunner: records what the subscriber hands over."""

    class projection:
        name = "recording"

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int, str]]] = []
        self.park: Any = None
        self.offset_lag: dict[str, int] = {}

    async def handle(self, messages: Sequence[Incoming]) -> int:
        self.batches.append([(m.stream_id, m.version, m.event_id) for m in messages])
        return len(messages)


def envelope() -> EventEnvelope:
    return EventEnvelope(
        event_type="UnitRenamed",
        schema_version=1,
        aggregate_type="OrgUnit",
        aggregate_id="HN",
        aggregate_version=2,
        payload={"unit_id": "HN", "name": "Hà Nội", "previous_name": "HN"},
    )


async def test_good_messages_reach_the_runner_and_poison_is_parked() -> None:
    broker = KafkaBroker()
    runner = RecordingRunner()
    subscribe_projection(broker, runner, [topics.ORG_TREE], group_id="g", batch=False)  # type: ignore[arg-type]
    parked: list[Any] = []

    @broker.subscriber(topics.dead_letter(topics.ORG_TREE))
    async def dead_letters(body: Any) -> None:
        parked.append(body)

    async with TestKafkaBroker(broker) as test_broker:
        good = envelope()
        await test_broker.publish(good.to_bytes(), topics.ORG_TREE, key=b"HN")
        await test_broker.publish(b"{not an envelope", topics.ORG_TREE, key=b"HN")
        unknown = good.model_copy(update={"event_type": "UnitTeleported"})
        await test_broker.publish(unknown.to_bytes(), topics.ORG_TREE, key=b"HN")

    # Readable envelopes reach the runner (which decides what it reads); garbage is parked.
    assert runner.batches[0] == [("OrgUnit-HN", 2, good.event_id)]
    assert runner.batches[1] == [("OrgUnit-HN", 2, unknown.event_id)]
    assert len(parked) == 1
    assert runner.park is not None
