"""The SDK and CLI against a live server that wants TLS, a client certificate (mTLS) and an API
key: what works, how each refusal surfaces, and that the key is never logged or shown."""

from __future__ import annotations

import logging
import ssl
import uuid
from pathlib import Path

import pytest

from chattts_server.certs import make_dev_certs
from chattts_server.cli import build_parser
from chattts_server.client import (
    AsyncClient,
    AuthenticationError,
    ChatTTSError,
    Client,
    ConnectError,
    TransportError,
)
from conftest import LiveServer
from securetool import KEY

WRONG = "sk-wrong-77aa31b0"


def tls(certs: dict[str, Path]) -> dict[str, Path]:
    return {"ca": certs["ca"], "cert": certs["client"], "key": certs["client_key"]}


def test_ca_cert_key_and_api_key_work(secure: LiveServer, certs: dict[str, Path]) -> None:
    assert secure.url.startswith("https://")
    with Client(secure.url, api_key=KEY, timeout=60, **tls(certs)) as client:
        assert client.health().ready
        name = f"tls-{uuid.uuid4().hex[:8]}"
        assert client.voices.create(name, seed=3).id == name
        audio = client.synthesize("Secure.", voice=name, format="wav")
        assert audio.data[:4] == b"RIFF" and (audio.duration or 0) > 0
        client.voices.delete(name)


async def test_the_async_client_too(secure: LiveServer, certs: dict[str, Path]) -> None:
    async with AsyncClient(secure.url, api_key=KEY, timeout=60, **tls(certs)) as client:
        assert "alloy" in {v.id for v in await client.voices.list()}


def test_without_a_client_certificate_the_call_fails_as_a_transport_error(
    secure: LiveServer, certs: dict[str, Path]
) -> None:
    client = Client(secure.url, api_key=KEY, ca=certs["ca"], retries=0)
    with client, pytest.raises(TransportError) as info:
        client.voices.list()
    err = info.value
    assert isinstance(err, ConnectError) and not isinstance(err, ssl.SSLError)
    assert str(err).startswith("GET /v1/voices: ") and err.request_id


def test_a_server_the_ca_does_not_vouch_for_is_refused(
    secure: LiveServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    stranger = make_dev_certs(tmp_path)["ca"]
    options = {**tls(certs), "ca": stranger}
    client = Client(secure.url, api_key=KEY, retries=0, **options)
    with client, pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED") as info:
        client.health()
    assert not info.value.request_sent  # refused at the handshake: nothing was sent


def test_api_keys_right_wrong_missing_and_never_shown(
    secure: LiveServer, certs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and the server's included
    errors: list[ChatTTSError] = []
    with Client(secure.url, api_key=KEY, timeout=60, **tls(certs)) as client:
        assert client.voices.list() and client.synthesize("Hi.", seed=1).data
        shown = [repr(client), repr(client.voices), repr(vars(client)["_http"])]
    for key, code in ((WRONG, "invalid_api_key"), (None, "missing_api_key")):
        client = Client(secure.url, api_key=key, **tls(certs))
        with client, pytest.raises(AuthenticationError) as info:
            client.voices.create("never", seed=1)
        assert (info.value.status, info.value.code) == (401, code)
        errors.append(info.value)
        shown += [repr(client)]
    retries = [
        r
        for r in caplog.records
        if r.name == "chattts_server.client" and r.levelno >= logging.WARNING
    ]
    assert retries == []  # a 401 is not retried (each call's end is logged at debug)
    shown += [str(e) for e in errors] + [repr(e) for e in errors]
    logged = [
        f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''}" for r in caplog.records
    ]
    assert any("request done" in line for line in logged)  # the server's request log
    assert any("401 Unauthorized" in line for line in logged)  # httpx's
    for secret in (KEY, WRONG):
        assert not [s for s in shown + logged if secret in s]


def test_the_cli_takes_tls_files_and_the_key_from_the_env(
    secure: LiveServer,
    certs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    files = ["--ca", str(certs["ca"]), "--cert", str(certs["client"]),
             "--key", str(certs["client_key"])]  # fmt: skip

    def voices_list(*extra: str) -> tuple[int, str, str]:
        args = build_parser().parse_args(["voices", "list", "--url", secure.url, *extra])
        code = args.func(args)
        out, err = capsys.readouterr()
        return code, out, err

    monkeypatch.setenv("CHATTTS_SERVER_API_KEY", KEY)
    code, out, _ = voices_list(*files)
    assert code == 0 and "alloy" in out
    code, _, err = voices_list(*files, "--api-key", WRONG)  # the flag wins over the env
    assert code == 1 and "code=invalid_api_key" in err and WRONG not in err
    code, _, err = voices_list("--ca", str(certs["ca"]), "--retries", "0")  # no client cert
    assert code == 1 and err.startswith("error: GET /v1/voices: ")

    out_file = tmp_path / "secure.wav"
    argv = ["say", "Secure.", "-o", str(out_file), "--url", secure.url, "--seed", "2", *files]
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0 and out_file.read_bytes()[:4] == b"RIFF"
    monkeypatch.delenv("CHATTTS_SERVER_API_KEY")
    args = build_parser().parse_args(argv)
    assert args.func(args) == 1 and "code=missing_api_key" in capsys.readouterr().err
