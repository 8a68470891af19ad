"""The GPT prompt's embeddings without torch: what ``ChatTTSEngine._prompt`` builds.

ChatTTS (``Chat._infer_code``, reproduced by the torch engine's ``_prompt``) turns a segment
into the GPT's input in four steps, each mirrored here in numpy:

1. ``Speaker.decorate_code_prompts``: ``[Stts][spk_emb|empty_spk]{txt_smp}[speed_N]{text}[Ptts]``
   with ``[Stts]``, ``[spk_emb]``, ``[empty_spk]`` removed from the text (:func:`decorate`);
2. ``Tokenizer.encode``: ``BertTokenizerFast`` ids without special tokens, each repeated over
   the ``num_vq`` codebooks, then a reference clip's tokens [num_vq, n] appended
   (:meth:`PromptBuilder.input_ids`); the tokenizer runs on ``tokenizers`` alone, from the
   ``tokenizer.json`` that :func:`export_tokenizer` writes at export time;
3. ``Embed.forward``: text positions look up ``emb_text``; clip positions sum the ``num_vq``
   ``emb_code`` tables' rows;
4. ``Speaker.apply``: every position whose first-codebook id is ``[spk_emb]`` becomes the
   normalised speaker vector (ChatTTS normalises the float16 values in float16 and writes them
   into the float32 embedding; this module takes that vector ready-made).

Checked in ``tests/engine/test_onnx_prompt.py`` against the torch engine's ``_prompt`` on the
generated tiny model (ids equal, embeddings within 1e-6): Chinese and English texts, seed
voices, no voice (``[empty_spk]``), a reference clip's tokens with its transcript, every speed
level.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

__all__ = ["PromptBuilder", "decorate", "export_tokenizer", "load_tokenizer"]

# ChatTTS control tokens and plain texts: the export checks the written tokenizer on these
_PROBES = (
    "[Stts][spk_emb][speed_5]你好，世界。[uv_break]Hello, World! 123[Ptts]",
    "[Stts][empty_spk]参考文本。[speed_0]ChatTTS 是一个 TTS 模型 for dialogue.[laugh][Ptts]",
    "[Sbreak]Mixed CASE text, numbers 3.14 and emoji 😀 [lbreak][Pbreak][oral_2][break_6]",
    "全角！＂＃（）ｆｕｌｌ　ｗｉｄｔｈ   spaces\tand\nnewlines [unknown] [spk_emb ] [ Stts]",
    "",
)


def export_tokenizer(tokenizer_dir: str | PathLike[str], out_path: str | PathLike[str]) -> Path:
    """Export-only (needs ``transformers``): write ChatTTS's tokenizer as one ``tokenizers``
    JSON file giving the ids ChatTTS's ``Tokenizer.encode`` gives.

    A ChatTTS ``asset/tokenizer`` folder already holds a ``tokenizer.json`` (official weights and
    generated test models alike), but ChatTTS reads the folder through
    ``BertTokenizerFast.from_pretrained``, which may rebuild parts of it from
    ``tokenizer_config.json``. So the file written here is the loaded tokenizer's own backend,
    with padding and truncation off, and it is checked against ``encode_plus(...,
    add_special_tokens=False)`` on probe texts before this returns."""
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # export only

    hf = BertTokenizerFast.from_pretrained(str(tokenizer_dir))
    backend = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    backend.encode_special_tokens = False
    out = Path(out_path)
    backend.save(str(out))
    written = load_tokenizer(out)
    encode_plus = hf.encode_plus if hasattr(hf, "encode_plus") else hf._encode_plus
    for text in _PROBES:  # ChatTTS's call (model/tokenizer.py)
        want = [int(i) for i in encode_plus(text, add_special_tokens=False)["input_ids"]]
        got = written.encode(text, add_special_tokens=False).ids
        if got != want:
            raise RuntimeError(f"exported tokenizer disagrees with transformers on {text!r}")
    return out


def load_tokenizer(path: str | PathLike[str]) -> Tokenizer:
    """The ``tokenizer.json`` written by :func:`export_tokenizer`."""
    return Tokenizer.from_file(str(path))


def decorate(text: str, speed_level: int, txt_smp: str | None, has_spk_emb: bool) -> str:
    """``Speaker.decorate_code_prompts([text], f"[speed_{speed_level}]", txt_smp, spk_emb)[0]``
    with ``spk_emb`` given or not (its value does not enter the text)."""
    text = text.replace("[Stts]", "").replace("[spk_emb]", "").replace("[empty_spk]", "").strip()
    text = f"[speed_{speed_level}]" + text
    smp = "" if txt_smp is None else txt_smp
    speaker = "[spk_emb]" if has_spk_emb else "[empty_spk]"
    return f"[Stts]{speaker}{smp}{text}[Ptts]"


class PromptBuilder:
    """The prompt embeddings [positions, hidden] (float32) for a segment, as the torch engine's
    ``_prompt`` computes them (``emb[0]``).

    ``tokenizer``: from :func:`load_tokenizer` (a copy with padding and truncation off is used
    when the given one has either); ``emb_text`` [text_vocab, H] and ``emb_code`` [num_vq,
    audio_tokens, H]: ChatTTS ``Embed.emb_text`` / ``emb_code[i]`` weights; ``spk_emb_id``: the
    ``[spk_emb]`` token's id (ChatTTS ``Tokenizer.spk_emb_ids``)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        emb_text: npt.ArrayLike,
        emb_code: npt.ArrayLike,
        num_vq: int,
        spk_emb_id: int,
    ) -> None:
        if tokenizer.padding is not None or tokenizer.truncation is not None:
            tokenizer = Tokenizer.from_str(tokenizer.to_str())
            tokenizer.no_padding()
            tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self.emb_text = np.ascontiguousarray(emb_text, dtype=np.float32)
        self.emb_code = np.ascontiguousarray(emb_code, dtype=np.float32)
        if self.emb_text.ndim != 2:
            raise ValueError(f"emb_text must be [vocab, hidden], not {self.emb_text.shape}")
        if self.emb_code.shape[::2] != (num_vq, self.emb_text.shape[1]):
            raise ValueError(
                f"emb_code must be [num_vq={num_vq}, audio_tokens, hidden="
                f"{self.emb_text.shape[1]}], not {self.emb_code.shape}"
            )
        self.num_vq = int(num_vq)
        self.spk_emb_id = int(spk_emb_id)
        self.hidden = int(self.emb_text.shape[1])
        self.num_audio_tokens = int(self.emb_code.shape[1])

    def encode(self, decorated: str) -> list[int]:
        """ChatTTS's ``encode_plus(text, add_special_tokens=False)`` ids of a decorated text."""
        return list(self.tokenizer.encode(decorated, add_special_tokens=False).ids)

    def _check_tokens(self, prompt_tokens: npt.ArrayLike) -> np.ndarray:
        tokens = np.asarray(prompt_tokens)
        if tokens.ndim != 2 or tokens.shape[0] != self.num_vq:
            # ChatTTS: assert prompt.size(0) == num_vq
            raise ValueError(f"prompt_tokens must be [{self.num_vq}, n], not {tokens.shape}")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"prompt_tokens must be integers, not {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.num_audio_tokens):
            raise ValueError(f"prompt_tokens must lie in 0…{self.num_audio_tokens - 1}")
        return tokens.astype(np.int64)

    def input_ids(
        self,
        text: str,
        *,
        speed_level: int,
        txt_smp: str | None,
        has_spk_emb: bool,
        prompt_tokens: npt.ArrayLike | None = None,
    ) -> np.ndarray:
        """ChatTTS ``Tokenizer.encode([decorated], num_vq, prompt)``'s ``input_ids[0]``:
        [positions, num_vq] int64, the text ids repeated over the codebooks, then the clip's
        tokens transposed."""
        ids = self.encode(decorate(text, speed_level, txt_smp, has_spk_emb))
        out = np.repeat(np.asarray(ids, np.int64)[:, None], self.num_vq, axis=1)
        if prompt_tokens is not None:
            out = np.concatenate([out, self._check_tokens(prompt_tokens).T])
        return out

    def build(
        self,
        text: str,
        *,
        speed_level: int,
        txt_smp: str | None,
        spk_emb: npt.ArrayLike | None,
        prompt_tokens: npt.ArrayLike | None = None,
    ) -> np.ndarray:
        """The prompt embeddings [positions, hidden] float32.

        ``text``: the segment (normalised); ``speed_level``: 0–9 (``[speed_N]``); ``txt_smp``:
        a reference clip's normalised transcript or None; ``spk_emb``: the normalised speaker
        vector [hidden] (what ``Speaker.apply`` writes), or None for ``[empty_spk]``;
        ``prompt_tokens``: a reference clip's tokens [num_vq, n] (ChatTTS ``spk_smp`` decoded),
        or None."""
        ids = self.encode(decorate(text, speed_level, txt_smp, spk_emb is not None))
        n_text = len(ids)
        tokens = None if prompt_tokens is None else self._check_tokens(prompt_tokens)
        n_clip = 0 if tokens is None else tokens.shape[1]
        emb = np.empty((n_text + n_clip, self.hidden), np.float32)
        emb[:n_text] = self.emb_text[np.asarray(ids, np.int64)]
        first = np.asarray(ids, np.int64)  # each position's first-codebook id
        if tokens is not None and n_clip:
            code = self.emb_code[0][tokens[0]]
            for i in range(1, self.num_vq):
                code = code + self.emb_code[i][tokens[i]]
            emb[n_text:] = code
            first = np.concatenate([first, tokens[0]])
        if spk_emb is not None:
            vec = np.asarray(spk_emb, np.float32)
            if vec.shape != (self.hidden,):
                raise ValueError(f"spk_emb must be [{self.hidden}], not {vec.shape}")
            emb[first == self.spk_emb_id] = vec
        return emb
