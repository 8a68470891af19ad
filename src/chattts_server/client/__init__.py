"""Python SDK for chattts-server: blocking and asyncio clients, streaming, retries with backoff,
a circuit breaker, failover between servers and fallback audio. Needs only httpx (no torch, no
numpy).

Usage::

    from chattts_server.client import AsyncClient, AudioChunk, ChatTTSError, Client

    with Client("https://tts.internal:9700", timeout=60, fallback="sorry.wav",
                api_key=os.environ["CHATTTS_SERVER_API_KEY"],   # Authorization: Bearer …
                ca="ca.pem", cert="client.pem", key="client-key.pem") as tts:   # TLS, mTLS
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

        # the voice library: a saved voice sounds the same on every call, by name
        tts.voices.create("narrator", seed=42, language="en", defaults={"speed": 0.9})
        tts.voices.create("me", ref_audio=Path("me.wav").read_bytes(), ref_text="Hello.")
        tts.synthesize("Chapter one.", voice="narrator").save("ch1.wav")
        tts.voices.update("narrator", description="calm, slow")
        tts.voices.sample("narrator").save("preview.wav")
        print([v.id for v in tts.voices.list()])   # alloy, …, narrator, me
        tts.voices.delete("me")            # creating a taken name: ConflictError (409)
        backup = tts.voices.export()       # a JSON-ready dict; on another server:
        result = other.voices.import_(backup)   # result.imported, result.skipped

    # failover: each call goes to the first server that is up, in this order
    with Client(["https://tts-a.internal:9700", "https://tts-b.internal:9700"]) as tts:
        audio = tts.synthesize("Hi.")      # audio.endpoint: the server that made it

    async with AsyncClient() as tts:       # the same calls, awaited
        audio = await tts.synthesize("Hi.")
        async for event in tts.stream("Hi."):
            ...
        voices = await tts.voices.list()

Calls retry 429 / 503 (honouring ``Retry-After``), 502 / 504, connection failures and
timeouts, with exponential backoff and full jitter, sending one ``X-Request-ID`` across the
attempts. Calls that change the voice library are repeated only when the server surely did
nothing (no connection, 429, 503; see :class:`RetryPolicy`). A stream is never retried once
part of it was delivered: it raises :class:`StreamInterruptedError` instead. After
``breaker_threshold`` consecutive failed calls the client fails fast with
:class:`CircuitOpenError` for ``breaker_cooldown`` seconds.

Given several base URLs, a client keeps one breaker per server and sends each call to the first
server, in order, whose breaker admits it (an open one is skipped). A failure that the rules
above would retry moves the call at once to the next such server, without a wait and without
counting a retry; once every server was tried, a retry (after its backoff) starts again from the
first. So a dead server costs a refused connection per call until its breaker opens, then
nothing; a stream that had delivered audio still raises :class:`StreamInterruptedError`; a
change to the voice library moves on only when the server it tried surely did nothing. Results
name the server that made them (``Audio.endpoint``, ``Done.endpoint``, ``Health.endpoint``),
errors the one of their last attempt (``ChatTTSError.endpoint``).

Every call also sends a W3C ``traceparent``: a span of its own in a new trace, or in the
caller's trace inside ``with traceparent(incoming_header):``; the server logs that trace id
beside the request id. Retries and failovers are logged on the ``chattts_server.client``
logger, and each call's end at debug level, with the call's request id and trace id (also as
the records' ``request_id`` and ``trace_id`` attributes); the API key never is.
Errors: :mod:`chattts_server.client.errors`.
"""

from ._async import AsyncClient, AsyncVoices
from ._base import DEFAULT_URL, BaseClient
from ._policy import CircuitBreaker, Endpoint, RetryPolicy, Timeout
from ._sync import Client, Voices
from ._trace import traceparent
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ChatTTSError,
    CircuitOpenError,
    ConflictError,
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
    ImportResult,
    Pauses,
    Progress,
    StreamEvent,
    TTSParams,
    Voice,
    VoiceChanges,
    VoiceDefaults,
)

__all__ = [
    "DEFAULT_URL",
    "APIStatusError",
    "AsyncClient",
    "AsyncVoices",
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
    "ConflictError",
    "ConnectError",
    "Done",
    "Endpoint",
    "Health",
    "ImportResult",
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
    "VoiceChanges",
    "VoiceDefaults",
    "Voices",
    "traceparent",
]
