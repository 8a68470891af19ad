"""schemathesis hooks for the contract test (loaded by the CLI through ``SCHEMATHESIS_HOOKS``).

A generator can draw any string the schema allows, but a speaker string, an audio clip or an
encoded clip is only valid when it decodes: no regular expression says that. Where the schema
has such an opaque field, a drawn non-empty string is replaced by a real value made by the
server under test (``CHATTTS_CONTRACT_DATA``, written by the test); empty strings and other
types stay as drawn, so the invalid cases still reach the server. Half of the valid voice names
in paths become voices that exist, so the voice operations get past 404 to their own logic.

A valid ``X-Request-Timeout`` is dropped: whether a drawn deadline passes before, during or
after the synthesis depends on the machine's speed (a 504, or a chunked body ended short by
design). Invalid values stay (a 400 at once); ``tests/robustness/test_trust.py`` checks
deadlines.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import schemathesis

_DATA: dict[str, Any] = json.loads(Path(os.environ["CHATTTS_CONTRACT_DATA"]).read_text())
_OPAQUE = ("spk_emb", "ref_audio", "ref_tokens")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _fill(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _DATA[k] if k in _OPAQUE and isinstance(v, str) and v else _fill(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_fill(v) for v in value]
    return value


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    case.body = _fill(case.body)
    name = (case.path_parameters or {}).get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        digest = hashlib.sha256(name.encode()).digest()
        if digest[0] % 2 == 0:
            voices = _DATA["voices"]
            case.path_parameters["name"] = voices[digest[1] % len(voices)]
    if case.headers:
        case.headers = {
            k: v for k, v in case.headers.items()
            if k.lower() != "x-request-timeout" or not _valid_timeout(v)
        }  # fmt: skip
    return case


def _valid_timeout(value: Any) -> bool:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return False
    return 0 < seconds <= _DATA["request_timeout_s"]
