"""ChatTTS speaker math without torch: a seed's voice, speaker and prompt strings, normalisation.

For an engine that does not load torch (ONNX Runtime). Only numpy, ``lzma``, ``math`` and
``pybase16384`` are used; this module never imports torch. Each function gives what ChatTTS's
``Speaker`` (``ChatTTS/model/speaker.py``) and the torch engine's ``spk_emb_from_seed`` give,
byte for byte.

How :func:`torch_randn` equals ``torch.randn(n, generator=torch.Generator().manual_seed(seed),
dtype=torch.float32)`` on CPU bit for bit (read from ATen's DistributionTemplates.h and
avx_mathfun.h and from the disassembly of torch 2.9.1's ``libtorch_cpu.so``):

* Generator: torch's CPU generator is the standard MT19937, seeded like numpy's legacy
  ``RandomState(seed)`` (seeds 0…2**32-1), so its raw 32-bit draws are
  ``RandomState(seed).randint(0, 2**32, dtype=uint32)``, a stream numpy keeps frozen.
* Uniforms: ATen's ``uniform_real<float>`` keeps the *low* 24 bits of a draw, times 2**-24.
* ``n >= 16``: all ``n`` uniforms are drawn first, then Box–Muller in blocks of 16
  (u1 = 1 − d[j], u2 = d[j+8], r = sqrt(−2·log u1), θ = 2π·u2, d[j] = r·cos θ,
  d[j+8] = r·sin θ, j < 8); when ``n % 16`` is not 0 the last 16 elements are redone from 16
  fresh uniforms.
* ``kernel="avx2"`` (default): ATen's ``normal_fill_16_AVX2``, run by every x86-64 CPU with
  AVX2, AVX-512 ones included (``normal_stub`` has no AVX-512 build and falls back to AVX2).
  Its log and sin/cos are ``log256_ps`` and ``sincos256_ps`` (Pommier's Cephes float32
  polynomials); they are emulated operation by operation in float32, including every place
  where GCC fused a multiply and an add into one FMA instruction (``-ffp-contract=fast``, seen
  in the disassembly): each polynomial step ``y*x + p``, the reduction ``x + y*DP``,
  ``y*z + e*q1``, ``y − z*0.5`` and ``x + e*q2`` in the log, ``y*z − z*0.5`` and ``y2*x + x``
  in the sincos, and the final ``n*std + mean``. A float32 FMA is computed exactly: the
  product is exact in float64, the float64 sum is made round-to-odd (TwoSum), and that rounds
  correctly to float32 (the plain float64 sum never differed in 42 million FMAs measured, but
  the exact form costs little).
* ``kernel="scalar"``: ATen's scalar ``normal_fill_16<float>``, which CPUs without AVX2 run
  (old x86-64; torch with ``ATEN_CPU_CAPABILITY=default``): the C library's ``logf`` and
  ``sincosf`` in float32, θ computed in double then rounded to float32, no FMA. Emulated with
  glibc's (2.28 and later) ``logf``/``sincosf`` algorithms, evaluated in float64 as the C does:
  equal to glibc 2.36 (x86-64, its FMA and non-FMA builds alike) for all 2**24 arguments this
  kernel can pass. Not covered: aarch64 (glibc there rounds the quadrant differently and the
  compiler fuses multiply-adds; unverified) and other C libraries.
* ``n < 16``: ATen uses ``normal_distribution<double>`` per element pair (53-bit uniforms from
  two draws, r = sqrt(−2·log1p(−u2)), θ = 2π·u1, r·cos θ then the cached r·sin θ), rounded to
  float32. Emulated with Python's ``math``, which calls the same C library functions.

Verified bit for bit against torch (tests/engine/test_speakers.py) for 2000 seeds (0…999 and
1000 spread over 0…2**32-1) at n = 768 (the real model), 64 (the tiny test model), 16, 17,
100, 1000 and several n < 16; the scalar kernel against torch run with
``ATEN_CPU_CAPABILITY=default``.

The two kernels differ from each other, so torch itself gives a seed different voices with and
without AVX2: their noise differs by up to 2.1e-6, and with the real model's statistics 847 of
2000 seeds' speaker strings differ, in 1 to 4 of the 768 values (a float16 rounding step, or
~1e-6 where std·noise + mean is near 0). Pick the kernel of the machine whose torch voices are
to be matched; AVX2 is what x86-64 servers run.
"""

from __future__ import annotations

import lzma
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pybase16384 as b14

__all__ = [
    "SpeakerStats",
    "decode_prompt",
    "decode_spk_emb",
    "encode_prompt",
    "encode_spk_emb",
    "normalized",
    "spk_emb_from_seed",
    "torch_randn",
    "torch_randn_many",
]

Kernel = Literal["avx2", "scalar"]
F32Array = npt.NDArray[np.float32]

_F32 = np.float32
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]

# avx_mathfun.h's constants (double literals rounded to float32, as the C++ does).
_ONE = _F32(1.0)
_HALF = _F32(0.5)
_MINUS_TWO = _F32(-2.0)
_TWO_PI = _F32(2.0 * math.pi)  # _mm256_set1_ps(2.0f * c10::pi<double>)
_MIN_NORM_BITS = np.int32(0x00800000)
_INV_MANT_MASK = np.int32(~0x7F800000)
_HALF_BITS = np.array(0.5, _F32).view(np.int32)
_SQRTHF = _F32(0.707106781186547524)
_LOG_P = [
    _F32(v)
    for v in (
        7.0376836292e-2,
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    )
]
_LOG_Q1 = _F32(-2.12194440e-4)
_LOG_Q2 = _F32(0.693359375)
_MINUS_DP = [_F32(-0.78515625), _F32(-2.4187564849853515625e-4), _F32(-3.77489497744594108e-8)]
_SINCOF = [_F32(-1.9515295891e-4), _F32(8.3321608736e-3), _F32(-1.6666654611e-1)]
_COSCOF = [
    _F32(2.443315711809948e-005),
    _F32(-1.388731625493765e-003),
    _F32(4.166664568298827e-002),
]
_FOPI = _F32(1.27323954473516)  # 4 / pi


# ---------------------------------------------------------------------------------------------
# torch.randn


def _fma(a: F32Array, b: F32Array | np.float32, c: F32Array | np.float32) -> F32Array:
    """float32 ``a*b + c`` rounded once, as ``vfmadd`` does.

    The product of two float32 is exact in float64; the float64 sum is made round-to-odd (its
    last bit records whether it was inexact), and a round-to-odd value with 53 ≥ 24 + 2 bits
    rounds to the correctly rounded float32.
    """
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    c64 = np.broadcast_to(np.asarray(c, np.float64), p.shape)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)  # TwoSum: p + c == s + err exactly
    even = (s.view(np.int64) & 1) == 0
    fix = (err != 0) & even
    if fix.any():
        s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(_F32)


def _log256_ps(x: F32Array) -> F32Array:
    """``log256_ps`` of avx_mathfun.h as compiled into torch (with its FMA contractions)."""
    invalid = x <= 0
    x = np.maximum(x, _MIN_NORM_BITS.view(_F32))
    bits = x.view(np.int32)
    imm0 = (bits >> 23) - np.int32(0x7F)  # x > 0: arithmetic == logical shift
    x = ((bits & _INV_MANT_MASK) | _HALF_BITS).view(_F32)
    e = imm0.astype(_F32) + _ONE
    mask = x < _SQRTHF
    tmp = np.where(mask, x, _F32(0.0))
    x = x - _ONE
    e = e - np.where(mask, _ONE, _F32(0.0))
    x = tmp + x
    qe1 = e * _LOG_Q1
    y = np.full_like(x, _LOG_P[0])
    for p in _LOG_P[1:]:
        y = _fma(y, x, p)
    z = x * x
    y = x * y
    y = _fma(y, z, qe1)
    y = _fma(-z, _HALF, y)
    x = x + y
    x = _fma(e, _LOG_Q2, x)
    return np.where(invalid, _F32(np.nan), x)


def _sincos256_ps(theta: F32Array) -> tuple[F32Array, F32Array]:
    """``sincos256_ps`` of avx_mathfun.h as compiled into torch: (sin, cos)."""
    sign_sin = np.signbit(theta)
    xa = np.abs(theta)
    j = (xa * _FOPI).astype(np.int32)  # cvttps: truncation
    j = (j + 1) & ~np.int32(1)
    y = j.astype(_F32)
    sign_sin = sign_sin ^ ((j & 4) != 0)
    poly_mask = (j & 2) == 0
    sign_cos = (~(j - 2) & 4) != 0
    x = xa
    for dp in _MINUS_DP:
        x = _fma(y, dp, x)
    z = x * x
    yc = _fma(np.full_like(z, _COSCOF[0]), z, _COSCOF[1])
    yc = _fma(yc, z, _COSCOF[2])
    half_z = z * _HALF
    yc = z * yc
    yc = _fma(yc, z, -half_z)
    yc = yc + _ONE
    ys = _fma(np.full_like(z, _SINCOF[0]), z, _SINCOF[1])
    ys = _fma(ys, z, _SINCOF[2])
    ys = z * ys
    ys = _fma(ys, x, x)
    zero = _F32(0.0)
    ysin2 = np.where(poly_mask, ys, zero)
    ysin1 = np.where(poly_mask, zero, yc)
    s = ysin2 + ysin1
    c = (ys - ysin2) + (yc - ysin1)
    return np.where(sign_sin, -s, s), np.where(sign_cos, -c, c)


def _fill16_avx2(d: F32Array) -> F32Array:
    """``normal_fill_16_AVX2`` on rows of 16 uniforms (std 1, mean 0)."""
    u1 = _ONE - d[:, :8]
    radius = np.sqrt(_log256_ps(u1) * _MINUS_TWO)
    sin, cos = _sincos256_ps(_TWO_PI * d[:, 8:])
    out = np.concatenate([radius * cos, radius * sin], axis=1)
    return _fma(out, _ONE, _F32(0.0))  # _mm256_fmadd_ps(n, std, mean): turns -0 into +0


# glibc 2.28+ ``logf`` and ``sincosf`` (sysdeps/ieee754/flt-32, from Arm's optimized-routines),
# evaluated in float64 as the C does, for the ranges ATen's scalar kernel feeds them: u1 in
# [2**-24, 1] and θ in [0, 2π). Table and polynomial values are glibc's.
_h = float.fromhex
_LOGF_INVC_LOGC = np.array(
    [
        (_h("0x1.661ec79f8f3bep+0"), _h("-0x1.57bf7808caadep-2")),
        (_h("0x1.571ed4aaf883dp+0"), _h("-0x1.2bef0a7c06ddbp-2")),
        (_h("0x1.49539f0f010bp+0"), _h("-0x1.01eae7f513a67p-2")),
        (_h("0x1.3c995b0b80385p+0"), _h("-0x1.b31d8a68224e9p-3")),
        (_h("0x1.30d190c8864a5p+0"), _h("-0x1.6574f0ac07758p-3")),
        (_h("0x1.25e227b0b8eap+0"), _h("-0x1.1aa2bc79c81p-3")),
        (_h("0x1.1bb4a4a1a343fp+0"), _h("-0x1.a4e76ce8c0e5ep-4")),
        (_h("0x1.12358f08ae5bap+0"), _h("-0x1.1973c5a611cccp-4")),
        (_h("0x1.0953f419900a7p+0"), _h("-0x1.252f438e10c1ep-5")),
        (1.0, 0.0),
        (_h("0x1.e608cfd9a47acp-1"), _h("0x1.aa5aa5df25984p-5")),
        (_h("0x1.ca4b31f026aap-1"), _h("0x1.c5e53aa362eb4p-4")),
        (_h("0x1.b2036576afce6p-1"), _h("0x1.526e57720db08p-3")),
        (_h("0x1.9c2d163a1aa2dp-1"), _h("0x1.bc2860d22477p-3")),
        (_h("0x1.886e6037841edp-1"), _h("0x1.1058bc8a07ee1p-2")),
        (_h("0x1.767dcf5534862p-1"), _h("0x1.4043057b6ee09p-2")),
    ]
)
_LOGF_LN2 = _h("0x1.62e42fefa39efp-1")
_LOGF_A = (_h("-0x1.00ea348b88334p-2"), _h("0x1.5575b0be00b6ap-2"), _h("-0x1.ffffef20a4123p-2"))
_SINCOSF_HPI_INV = _h("0x1.45F306DC9C883p+23")  # 2/π × 2**24 (x86-64: no TOINT_INTRINSICS)
_SINCOSF_HPI = _h("0x1.921FB54442D18p0")
_SINCOSF_C = (1.0, _h("-0x1.ffffffd0c621cp-2"), _h("0x1.55553e1068f19p-5"),
              _h("-0x1.6c087e89a359dp-10"), _h("0x1.99343027bf8c3p-16"))  # fmt: skip
_SINCOSF_S = (_h("-0x1.555545995a603p-3"), _h("0x1.1107605230bc4p-7"), _h("-0x1.994eb3774cf24p-13"))


def _abstop12(x: F32Array) -> npt.NDArray[np.uint32]:
    return ((x.view(np.uint32) >> 20) & 0x7FF).astype(np.uint32)


def _glibc_logf(x: F32Array) -> F32Array:
    """glibc's ``logf`` for normal positive ``x``."""
    ix = x.view(np.uint32)
    tmp = ix - np.uint32(0x3F330000)
    i = (tmp >> 19) % 16
    k = (tmp.view(np.int32) >> 23).astype(np.float64)
    z = (ix - (tmp & np.uint32(0x1FF << 23))).view(_F32).astype(np.float64)
    invc, logc = _LOGF_INVC_LOGC[i, 0], _LOGF_INVC_LOGC[i, 1]
    r = z * invc - 1.0
    y0 = logc + k * _LOGF_LN2
    r2 = r * r
    a0, a1, a2 = _LOGF_A
    y = a1 * r + a2
    y = a0 * r2 + y
    y = y * r2 + (y0 + r)
    return np.where(ix == np.uint32(0x3F800000), _F32(0.0), y.astype(_F32))


def _glibc_sincosf(theta: F32Array) -> tuple[F32Array, F32Array]:
    """glibc's ``sincosf`` for 0 <= θ < 120: (sin, cos)."""
    x = theta.astype(np.float64)
    top = _abstop12(theta)
    below_pio4 = top < _abstop12(np.array([math.pi / 4], _F32))[0]
    tiny = top < _abstop12(np.array([2.0**-12], _F32))[0]
    n = np.where(below_pio4, 0, ((x * _SINCOSF_HPI_INV).astype(np.int32) + 0x800000) >> 24)
    x = np.where(below_pio4, x, x - n * _SINCOSF_HPI)
    xs = np.where((n & 3) % 3 == 0, x, -x)  # sign of the sine in quadrants 0..3: + - - +
    c_sign = np.where(n & 2, -1.0, 1.0)  # glibc's second table negates the cosine polynomial
    c0, c1, c2, c3, c4 = (c_sign * v for v in _SINCOSF_C)
    s1c, s2c, s3c = _SINCOSF_S
    x2 = x * x
    x4 = x2 * x2
    x3 = x2 * xs
    pc2 = c3 + x2 * c4
    ps1 = s2c + x2 * s3c
    pc1 = c0 + x2 * c1
    x5 = x3 * x2
    x6 = x4 * x2
    s = (xs + x3 * s1c) + x5 * ps1
    c = (pc1 + x4 * c2) + x6 * pc2
    s32, c32 = s.astype(_F32), c.astype(_F32)
    odd = (n & 1) != 0
    sin = np.where(tiny, theta, np.where(odd, c32, s32))
    cos = np.where(tiny, _ONE, np.where(odd, s32, c32))
    return sin, cos


def _fill16_scalar(d: F32Array) -> F32Array:
    """ATen's scalar ``normal_fill_16<float>`` (std 1, mean 0) with glibc's logf/sincosf."""
    u1 = _ONE - d[:, :8]
    radius = np.sqrt(_MINUS_TWO * _glibc_logf(u1))
    theta = ((2.0 * math.pi) * d[:, 8:].astype(np.float64)).astype(_F32)
    sin, cos = _glibc_sincosf(theta)
    out = np.concatenate([radius * cos, radius * sin], axis=1)
    return out * _ONE + _F32(0.0)


def _raw_draws(rs: np.random.RandomState, seed: int, count: int) -> npt.NDArray[np.uint32]:
    """The first ``count`` 32-bit draws of MT19937 seeded with ``seed`` (reseeding ``rs``, which
    is cheaper than building a RandomState per seed)."""
    if not 0 <= seed <= 0xFFFFFFFF:
        raise ValueError(f"seed must be between 0 and {0xFFFFFFFF}, not {seed}")
    rs.seed(seed)
    draws = rs.randint(0, 2**32, size=count, dtype=np.uint32)
    return draws.astype(np.uint32, copy=False)


def _randn_small(rs: np.random.RandomState, n: int, seed: int) -> F32Array:
    """``n < 16``: ATen's ``normal_distribution<double>``, one Box–Muller pair per two values."""
    raw = _raw_draws(rs, seed, 4 * ((n + 1) // 2)).tolist()
    mask, scale = (1 << 53) - 1, 2.0**-53
    out = np.empty(n, _F32)
    for i in range(0, n, 2):
        hi1, lo1, hi2, lo2 = raw[2 * i : 2 * i + 4]  # random64() = first << 32 | second
        u1 = (((hi1 << 32) | lo1) & mask) * scale
        u2 = (((hi2 << 32) | lo2) & mask) * scale
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        out[i] = r * math.cos(theta) + 0.0  # × std + mean, fused: -0 becomes +0
        if i + 1 < n:
            out[i + 1] = r * math.sin(theta) + 0.0
    return out


def torch_randn(n: int, seed: int, *, kernel: Kernel = "avx2") -> F32Array:
    """``torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)`` on
    CPU, bit for bit: ``kernel="avx2"`` as on x86-64 with AVX2, ``"scalar"`` as on CPUs
    without it (see the module docstring)."""
    return torch_randn_many(n, [seed], kernel=kernel)[0]


def torch_randn_many(n: int, seeds: Sequence[int], *, kernel: Kernel = "avx2") -> F32Array:
    """:func:`torch_randn` for each of ``seeds``: shape [len(seeds), n], computed together."""
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    if kernel not in ("avx2", "scalar"):
        raise ValueError(f"kernel must be 'avx2' or 'scalar', not {kernel!r}")
    if not seeds:
        return np.empty((0, n), _F32)
    rs = np.random.RandomState(0)  # one per call: a RandomState is not thread-safe
    if n < 16:
        return np.stack([_randn_small(rs, n, seed) for seed in seeds]).reshape(len(seeds), n)
    tail = n % 16
    raw = np.stack([_raw_draws(rs, seed, n + (16 if tail else 0)) for seed in seeds])
    uniforms = (raw & np.uint32(0xFFFFFF)).astype(_F32) * _F32(2.0**-24)
    fill = _fill16_avx2 if kernel == "avx2" else _fill16_scalar
    full = n - tail
    out = np.empty((len(seeds), n), _F32)
    out[:, :full] = fill(uniforms[:, :full].reshape(-1, 16)).reshape(len(seeds), full)
    if tail:
        out[:, n - 16 :] = fill(uniforms[:, n:])
    return out


# ---------------------------------------------------------------------------------------------
# Speaker strings


def _compress(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)


_MAX_DECOMPRESSED = 4 << 20  # speaker strings and clip tokens are far smaller (a bomb is not)


def _decompress(data: bytes) -> bytes:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    out = d.decompress(data, max_length=_MAX_DECOMPRESSED)
    if not d.eof and not d.needs_input:  # output left over: it expands beyond the bound
        raise ValueError(f"compressed data expands beyond {_MAX_DECOMPRESSED} bytes")
    return out


@dataclass(frozen=True, eq=False)
class SpeakerStats:
    """The model's speaker statistics (ChatTTS config ``spk_stat``): float16 ``std`` and
    ``mean``, as ``Speaker.__init__`` splits them."""

    std: npt.NDArray[np.float16]
    mean: npt.NDArray[np.float16]

    @classmethod
    def from_spk_stat(cls, spk_stat: str) -> SpeakerStats:
        """Decode ``spk_stat`` (base16384 of float16 std then mean, uncompressed)."""
        values = np.frombuffer(b14.decode_from_string(spk_stat), dtype="<f2").astype(np.float16)
        if values.size == 0 or values.size % 2:
            raise ValueError(f"spk_stat must hold 2×dim float16 values, it holds {values.size}")
        half = values.size // 2
        return cls(std=values[:half].copy(), mean=values[half:].copy())

    @property
    def dim(self) -> int:
        return int(self.std.size)


def encode_spk_emb(values: npt.ArrayLike) -> str:
    """A speaker string (``Speaker._encode``): float16 bytes, raw LZMA2, base16384."""
    arr = np.asarray(values).astype("<f2")
    return str(b14.encode_to_string(_compress(arr.tobytes())))


def decode_spk_emb(spk_emb: str) -> npt.NDArray[np.float16]:
    """A speaker string's float16 values (``Speaker._decode``)."""
    raw = _decompress(b14.decode_from_string(spk_emb))
    return np.frombuffer(raw, dtype="<f2").astype(np.float16)


def spk_emb_from_seed(seed: int, stats: SpeakerStats, *, kernel: Kernel = "avx2") -> str:
    """The speaker string for ``seed``: what :func:`.voices.spk_emb_from_seed` gives with torch
    (noise × std + mean in float32, two roundings, then float16)."""
    noise = torch_randn(stats.dim, seed, kernel=kernel)
    values = noise * stats.std.astype(_F32)
    values = values + stats.mean.astype(_F32)
    return encode_spk_emb(values.astype(np.float16))


def encode_prompt(tokens: npt.ArrayLike) -> str:
    """Encoded reference-clip tokens (``Speaker.encode_prompt``): shape as two uint16, then the
    uint16 tokens, raw LZMA2, base16384."""
    arr = np.asarray(tokens).astype(np.uint16)
    if arr.ndim != 2:
        raise ValueError(f"tokens must be 2-D [num_vq, n], not {arr.ndim}-D")
    header = np.array(arr.shape, dtype="<u2").tobytes()
    return str(b14.encode_to_string(header + _compress(arr.astype("<u2").tobytes())))


def decode_prompt(prompt: str) -> npt.NDArray[np.int32]:
    """The int32 token array [num_vq, n] of an encoded clip (``Speaker.decode_prompt``)."""
    data = b14.decode_from_string(prompt)
    shape = tuple(int(v) for v in np.frombuffer(data[:4], dtype="<u2"))
    tokens = np.frombuffer(_decompress(data[4:]), dtype="<u2")
    return tokens.astype(np.int32).reshape(shape)


def normalized(spk_emb: str | npt.ArrayLike) -> F32Array:
    """The vector ``Speaker.apply`` writes into the embedding for ``spk_emb``, as float32.

    ``apply`` decodes the string to float16 and runs ``F.normalize(p=2, eps=1e-12)`` on that
    float16 tensor: the norm accumulates the squares in float32 in order (each square of a
    float16 is exact), its square root is rounded to float16, and each value divided by it is
    rounded to float16 (a float32 quotient rounded again, which equals one correct rounding).
    Arrays are taken as float16, the values a speaker string holds.
    """
    x16 = decode_spk_emb(spk_emb) if isinstance(spk_emb, str) else np.asarray(spk_emb, np.float16)
    x = x16.astype(_F32).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sum_sq = np.add.accumulate(x * x)[-1] if x.size else _F32(0.0)
        norm = np.sqrt(_F32(sum_sq)).astype(np.float16)
        denom = max(norm, np.float16(1e-12))  # clamped in float16, where 1e-12 rounds to 0
        return (x / _F32(denom)).astype(np.float16).astype(_F32)
