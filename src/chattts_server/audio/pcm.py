"""PCM validation and float <-> int16 conversion.

Float samples are full scale at ±1.0. Conversion to int16 multiplies by 32768, rounds to
nearest and clips to [-32768, 32767] *before* the integer cast, so out-of-range input
saturates and never wraps around: 1.0 and 1.5 both give 32767, -1.0 and -1.5 give -32768.
With the matching ``int16 / 32768`` inverse, int16 -> float -> int16 is exact.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidPCMError

__all__ = ["float_to_int16", "int16_to_float", "validate_pcm"]

_SCALE = 32768.0
_ACCEPTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int16))


def validate_pcm(chunk: np.ndarray) -> np.ndarray:
    """Check one chunk of mono PCM and return it as float32 at full scale ±1.0.

    Accepts 1-D float32, float64 or int16 arrays; empty chunks are valid.

    Raises:
        InvalidPCMError: not a numpy array, wrong dtype, not 1-D, or NaN/inf present.
    """
    if not isinstance(chunk, np.ndarray):
        raise InvalidPCMError(f"PCM must be a numpy array, got {type(chunk).__name__}")
    if chunk.dtype not in _ACCEPTED_DTYPES:
        raise InvalidPCMError(f"PCM dtype must be float32, float64 or int16, got {chunk.dtype}")
    if chunk.ndim != 1:
        raise InvalidPCMError(f"PCM must be 1-D (mono), got shape {chunk.shape}")
    if chunk.dtype == np.int16:
        return int16_to_float(chunk)
    if not np.isfinite(chunk).all():
        raise InvalidPCMError("PCM contains NaN or infinite values")
    return chunk.astype(np.float32, copy=False)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Convert float samples (full scale ±1.0) to int16, saturating out-of-range values."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * _SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """Convert int16 samples to float32 at full scale ±1.0."""
    return np.asarray(samples, dtype=np.int16).astype(np.float32) / np.float32(_SCALE)
