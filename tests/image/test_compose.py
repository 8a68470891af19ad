"""compose.yaml agrees with the Dockerfile and the settings (no compose tool runs here)."""

from __future__ import annotations

import re

import yaml

from .conftest import REPO


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def test_compose_mounts_runs_and_stops_the_server_as_the_image_expects() -> None:
    service = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))["services"][
        "chattts"
    ]
    assert service["build"]["context"] == "."
    targets = {v.rsplit(":", 2)[1] if v.endswith(":ro") else v.rsplit(":", 1)[1]
               for v in service["volumes"]}  # fmt: skip
    assert targets == {"/models", "/data"}
    assert any(v.endswith(":/models:ro") for v in service["volumes"])
    assert service["ports"] == ["9700:9700"]
    assert "EXPOSE 9700" in dockerfile() and 'VOLUME ["/models", "/data"]' in dockerfile()
    # the same check as the image's HEALTHCHECK
    assert service["healthcheck"]["test"] == ["CMD", "chattts-healthcheck"]
    assert 'CMD ["chattts-healthcheck"]' in dockerfile()
    # SIGKILL comes only after the server's own bound for requests in flight
    grace = int(service["environment"]["CHATTTS_SERVER_GRACEFUL_SHUTDOWN_S"])
    stop = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
    assert stop and int(stop.group(1)) > grace
    assert service["stop_signal"] == "SIGTERM" and "STOPSIGNAL SIGTERM" in dockerfile()


def test_postgres_is_an_opt_in_profile_the_server_can_point_at() -> None:
    text = (REPO / "compose.yaml").read_text(encoding="utf-8")
    services = yaml.safe_load(text)["services"]
    pg = services["postgres"]
    assert pg["profiles"] == ["postgres"]  # `docker compose up` alone: the server only
    env = pg["environment"]
    url = f"postgresql://{env['POSTGRES_USER']}:${{CHATTTS_DB_PASSWORD:-change-me}}@postgres:5432/"
    assert f"CHATTTS_SERVER_DATABASE_URL: {url}{env['POSTGRES_DB']}" in text
    assert "EXTRAS: torch,postgres" in text and "ARG EXTRAS" in dockerfile()
