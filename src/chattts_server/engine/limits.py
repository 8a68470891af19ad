"""What a synthesis request may ask for, stated once.

The engine checks requests against these; the server builds its wire models' bounds and its
OpenAPI document from them (limits that are settings — text length, token limit — come from
:class:`~.pipeline.EngineConfig` and :class:`~.base.EngineInfo`). Ranges are inclusive.
"""

from __future__ import annotations

NUM_AUDIO_TOKENS = 626  # ChatTTS's audio vocabulary per codebook: the largest top_k
SPEED = (0.5, 2.0)  # mapped onto ChatTTS's [speed_0]…[speed_9]
TEMPERATURE = (1e-5, 2.0)  # logits are divided by it: 0 is not a temperature
TOP_P = (1e-5, 1.0)
TOP_K = (1, NUM_AUDIO_TOKENS)
PAUSE_MS = (0, 10_000)  # silence after a clause or a sentence
SEED = (0, 2**32 - 1)  # voice seeds and manual (sampling) seeds
REF_AUDIO_MIN_SECONDS = 0.5
REF_TEXT_SEGMENTS = 4  # a reference transcript may be this many segments long
