"""Which servers the suite ran on: the same tests run on containers where Docker answers."""

import pytest

from sotay_platform.settings import InfraSettings
from sotay_platform.testing import docker_answers


def test_containers_are_used_where_a_docker_engine_answers(infra_mode: str) -> None:
    if infra_mode == "external":
        pytest.skip("SOTAY_MONGO_URL names external servers")
    if not docker_answers():
        pytest.skip("no Docker engine answers here: the embedded servers ran this suite")
    assert infra_mode == "containers"


def test_the_infra_settings_point_at_live_servers(infra: InfraSettings) -> None:
    import socket

    for host_port in (
        infra.kafka_bootstrap.split(",")[0],
        infra.redis_url.split("//")[1].split("/")[0],
    ):
        host, port = host_port.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            pass
