"""``chattts-server voices …`` end to end against the live server: parsed by the real
``chattts-server`` parser and run in-process, and once as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from chattts_server.cli import build_parser
from conftest import LiveServer

from .test_client_voices import reference_clip


def unique() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


class Run:
    """``chattts-server voices …`` in-process against one server: (exit code, stdout, stderr)."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, command: str, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = build_parser().parse_args(["voices", command, "--url", self.url, *argv])
        code = args.func(args)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def run(live: LiveServer, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(live.url, capsys)


def test_create_list_and_delete(run: Run, tmp_path: Path) -> None:
    name = unique()
    code, out, err = run("create", name, "--seed", "7", "--description", "deep and slow",
                         "--language", "en", "--speed", "0.8", "--no-refine-text")  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith(f"created voice {name} (seed, seed 7, model ")

    code, out, _ = run("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SEED", "LANG", "DESCRIPTION"]
    assert any(line.split() == ["alloy", "builtin", "1001", "OpenAI", "voice", "name"]
               for line in lines)  # fmt: skip
    assert [line.split() for line in lines if line.startswith(name)] == [
        [name, "seed", "7", "en", "deep", "and", "slow"]
    ]

    code, out, _ = run("list", "--json")
    mine = [v for v in json.loads(out) if v["id"] == name]
    assert code == 0 and len(mine) == 1
    assert mine[0]["defaults"] == {"speed": 0.8, "refine_text": False}
    assert mine[0]["model_fingerprint"] and mine[0]["created_at"] > 0

    clip = tmp_path / "me.wav"
    clip.write_bytes(reference_clip())
    code, out, err = run("create", unique(), "--ref-audio", str(clip), "--ref-text", "参考")
    assert code == 0 and "(ref_audio, model " in out, err

    assert run("delete", name)[:2] == (0, f"deleted voice {name}\n")
    code, out, err = run("delete", name)
    assert (code, out) == (1, "")
    assert f"voice '{name}' not found" in err and "code=voice_not_found" in err
    assert "param=name" in err and "status=404" in err and "[request " in err


def test_server_errors_exit_1_with_code_and_param(run: Run) -> None:
    name = unique()
    assert run("create", name, "--seed", "1")[0] == 0
    code, _, err = run("create", name, "--seed", "2")
    assert code == 1 and "status=409" in err and "code=voice_exists" in err and "param=name" in err
    code, _, err = run("create", unique(), "--spk-emb", "garbage")
    assert code == 1 and "code=invalid_spk_emb" in err and "param=spk_emb" in err
    code, _, err = run("create", unique(), "--seed", "1", "--speed", "9")
    assert code == 1 and "param=defaults.speed" in err


def test_usage_errors_exit_2_before_any_call(run: Run, tmp_path: Path) -> None:
    code, _, err = run("create", unique(), "--ref-audio", str(tmp_path / "none.wav"),
                       "--ref-text", "x")  # fmt: skip
    assert code == 2 and "--ref-audio" in err and "No such file" in err
    code, _, err = run("create", unique(), "--ref-audio", str(tmp_path / "none.wav"))
    assert code == 2 and "--ref-audio and --ref-text go together" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run("import", str(bad))
    assert code == 2 and "bad.json" in err
    bad.write_text("[]")
    assert run("import", str(bad))[0] == 2
    code, _, err = run("list", "--key", str(tmp_path / "client-key.pem"))
    assert code == 2 and "needs its certificate" in err
    code, _, err = run("list", "--ca", str(tmp_path / "ca.pem"))
    assert code == 2 and "cannot load --ca" in err


@pytest.mark.parametrize(
    "argv",
    [["create", "x"], ["create", "x", "--seed", "1", "--spk-emb", "s"], ["frobnicate"]],
)
def test_argparse_refuses_bad_combinations(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["voices", *argv])
    assert info.value.code == 2


def test_export_delete_import(run: Run, tmp_path: Path) -> None:
    name = unique()
    run("create", name, "--seed", "3", "--description", "round trip")
    target = tmp_path / "voices.json"
    code, out, _ = run("export", "-o", str(target))
    document = json.loads(target.read_text("utf-8"))
    count = len(document["voices"])
    assert (code, out) == (0, f"exported {count} voices to {target}\n")
    assert document["format"] == "chattts-server-voices"
    assert name in {v["name"] for v in document["voices"]}

    code, out, _ = run("export")  # stdout: the document alone
    assert code == 0 and json.loads(out) == document

    assert run("delete", name)[0] == 0
    code, out, _ = run("import", str(target))
    assert code == 0
    assert out.splitlines() == [
        f"imported 1: {name}",
        f"skipped {count - 1} that exist (--overwrite replaces them): "
        + ", ".join(v["name"] for v in document["voices"] if v["name"] != name),
    ]  # fmt: skip
    code, out, _ = run("list", "--json")
    back = [v for v in json.loads(out) if v["id"] == name]
    assert back and back[0]["description"] == "round trip"

    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({**document, "voices": [v for v in document["voices"]
                                                         if v["name"] == name]}))  # fmt: skip
    assert run("import", str(mine))[1].splitlines() == [
        "imported 0: -",
        f"skipped 1 that exist (--overwrite replaces them): {name}",
    ]
    assert run("import", str(mine), "--overwrite")[1] == f"imported 1: {name}\n"


def test_as_a_process_with_the_url_from_the_env(live: LiveServer) -> None:
    env = {**os.environ, "CHATTTS_SERVER_URL": live.url}
    r = subprocess.run(
        [sys.executable, "-m", "chattts_server.cli", "voices", "list", "--json"],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "shimmer" in {v["id"] for v in json.loads(r.stdout)}
    r = subprocess.run(
        [sys.executable, "-m", "chattts_server.cli", "voices", "delete", "no-such-voice"],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1 and b"code=voice_not_found" in r.stderr
