"""Python SDK for chattts-server: blocking and asyncio clients, streaming, retries with backoff,
a circuit breaker and fallback audio. Needs only httpx (no torch, no numpy).

Usage::

    from chattts_server.client import AsyncClient, AudioChunk, ChatTTSError, Client

    with Client("http://localhost:9700", timeout=60, fallback="sorry.wav") as tts:
        audio = tts.synthesize("Hello there.", voice="alloy", format="mp3")
        audio.save("hello.mp3")            # audio.fallback is True if the server was down

        tts.stream_to("long.wav", long_text, voice="seed:42")   # written while it arrives

        for event in tts.stream("Streaming, sentence by sentence.", seed=7):
            if isinstance(event, AudioChunk):
                player.write(event.pcm)    # s16le mono at event.sample_rate

        try:
            tts.synthesize("Hi.", voice="nobody")
        except ChatTTSError as exc:        # NotFoundError: exc.code == "voice_not_found"
            print(exc.status, exc.code, exc.param, exc.request_id)

    async with AsyncClient() as tts:       # the same calls, awaited
        audio = await tts.synthesize("Hi.")
        async for event in tts.stream("Hi."):
            ...

Calls retry 429 / 503 (honouring ``Retry-After``), 502 / 504, connection failures and
timeouts, with exponential backoff and full jitter, sending one ``X-Request-ID`` across the
attempts. A stream is never retried once part of it was delivered: it raises
:class:`StreamInterruptedError` instead. After ``breaker_threshold`` consecutive failed calls
the client fails fast with :class:`CircuitOpenError` for ``breaker_cooldown`` seconds. Retries
are logged on the ``chattts_server.client`` logger. Errors: :mod:`chattts_server.client.errors`.
"""

from ._async import AsyncClient
from ._base import DEFAULT_URL, BaseClient, CircuitBreaker, RetryPolicy, Timeout
from ._sync import Client
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ChatTTSError,
    CircuitOpenError,
    ConnectError,
    InternalServerError,
    NotAcceptableError,
    NotFoundError,
    PayloadTooLargeError,
    ProtocolError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    StreamInterruptedError,
    TimeoutError,
    TransportError,
    UnsupportedMediaTypeError,
)
from .models import (
    Audio,
    AudioChunk,
    AudioFormat,
    Done,
    Health,
    Pauses,
    Progress,
    StreamEvent,
    TTSParams,
    Voice,
)

__all__ = [
    "DEFAULT_URL",
    "APIStatusError",
    "AsyncClient",
    "Audio",
    "AudioChunk",
    "AudioFormat",
    "AuthenticationError",
    "BadRequestError",
    "BaseClient",
    "ChatTTSError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "ConnectError",
    "Done",
    "Health",
    "InternalServerError",
    "NotAcceptableError",
    "NotFoundError",
    "Pauses",
    "PayloadTooLargeError",
    "Progress",
    "ProtocolError",
    "RateLimitError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "StreamError",
    "StreamEvent",
    "StreamInterruptedError",
    "TTSParams",
    "Timeout",
    "TimeoutError",
    "TransportError",
    "UnsupportedMediaTypeError",
    "Voice",
]
