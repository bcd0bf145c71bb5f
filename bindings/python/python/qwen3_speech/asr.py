"""Speech recognition (Qwen3-ASR), forced alignment (Qwen3-ForcedAligner) and streaming."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _native
from ._audio import to_native
from ._options import device_and_dtype

AudioLike = Any  # str | os.PathLike | bytes | (samples, sample_rate)


@dataclass(frozen=True)
class ForcedAlignItem:
    """One aligned word (or CJK character).

    ``char_start``/``char_end``: where the word's characters are in the aligned text (Python
    string indices; not in the reference).
    """

    text: str
    start_time: float
    end_time: float
    char_start: int = -1
    char_end: int = -1


@dataclass(frozen=True)
class ForcedAlignResult:
    """The aligned items of one input; iterable and indexable like a list."""

    items: List[ForcedAlignItem]

    def __iter__(self) -> Iterator[ForcedAlignItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> ForcedAlignItem:
        return self.items[idx]


@dataclass(frozen=True)
class Segment:
    """A piece of a transcript (long audio is transcribed in pieces)."""

    start: float
    end: float
    text: str
    language: str


@dataclass(frozen=True)
class ASRTranscription:
    """One transcription result.

    ``language``, ``text`` and ``time_stamps`` are the reference's fields; the others are
    additions: ``segments`` (one per piece of long audio), ``raw`` (the model's output before
    parsing), ``duration`` (seconds), ``truncated`` (the token budget ran out) and ``warnings``.
    """

    language: str
    text: str
    time_stamps: Optional[ForcedAlignResult] = None
    segments: List[Segment] = field(default_factory=list)
    raw: str = ""
    duration: float = 0.0
    truncated: bool = False
    warnings: List[str] = field(default_factory=list)


def _items(words: Sequence[Tuple[str, float, float, int, int]]) -> ForcedAlignResult:
    return ForcedAlignResult(
        items=[ForcedAlignItem(t, float(s), float(e), int(a), int(b)) for t, s, e, a, b in words]
    )


def _transcription(d: Dict[str, Any]) -> ASRTranscription:
    words = d["words"]
    return ASRTranscription(
        language=d["language"],
        text=d["text"],
        time_stamps=None if words is None else _items(words),
        segments=[Segment(*s) for s in d["segments"]],
        raw=d["raw"],
        duration=d["duration"],
        truncated=d["truncated"],
        warnings=list(d["warnings"]),
    )


def _broadcast(value: Any, n: int, what: str) -> List[Any]:
    values = value if isinstance(value, list) else [value]
    if len(values) == 1 and n > 1:
        values = values * n
    if len(values) != n:
        raise ValueError(f"Batch size mismatch: audio={n}, {what}={len(values)}")
    return values


class Qwen3ASRModel:
    """A loaded Qwen3-ASR model (the reference's ``qwen_asr.Qwen3ASRModel``)."""

    def __init__(self, native: "_native.Transcriber"):
        self._native = native

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, "os.PathLike[str]"],
        forced_aligner: Optional[str] = None,
        forced_aligner_kwargs: Optional[Dict[str, Any]] = None,
        max_inference_batch_size: int = 32,
        max_new_tokens: Optional[int] = None,
        *,
        device: Optional[str] = None,
        dtype: Any = None,
        attention: Optional[str] = None,
        language: Optional[str] = None,
        context: str = "",
        chunk_seconds: Optional[float] = None,
        offline: Optional[bool] = None,
        **kwargs: Any,
    ) -> "Qwen3ASRModel":
        """Loads a model from a local folder or a Hugging Face hub id (downloaded if needed).

        As the reference: ``forced_aligner`` (folder or hub id) enables
        ``return_time_stamps``; ``device_map="cuda:0"`` and ``dtype="bfloat16"`` (or a torch
        dtype) are accepted. ``max_new_tokens=None`` (the default here, 512 in the reference)
        scales the budget with the audio's duration. ``forced_aligner_kwargs`` is accepted for
        compatibility; the aligner runs on the ASR model's device and dtype.

        Additions: ``attention`` ("windowed", the default, as the released models and vLLM, or
        "full", as the transformers backend), a default ``language`` and ``context``,
        ``chunk_seconds`` (long audio is split into pieces of at most this length) and
        ``offline`` (never use the network).
        """
        del forced_aligner_kwargs
        dev, dt = device_and_dtype(device, dtype, kwargs, "Qwen3ASRModel.from_pretrained")
        batch = int(max_inference_batch_size)
        native = _native.Transcriber(
            os.fspath(pretrained_model_name_or_path),
            language=language,
            context=context,
            max_new_tokens=max_new_tokens,
            device=dev,
            dtype=dt,
            attention=attention,
            aligner=None if forced_aligner is None else os.fspath(forced_aligner),
            batch_size=batch if batch > 0 else 64,
            chunk_seconds=chunk_seconds,
            offline=offline,
        )
        return cls(native)

    def get_supported_languages(self) -> List[str]:
        """Canonical names of the languages the model accepts."""
        return list(_native.Transcriber.supported_languages())

    def transcribe(
        self,
        audio: Union[AudioLike, List[AudioLike]],
        context: Optional[Union[str, List[Optional[str]]]] = None,
        language: Optional[Union[str, List[Optional[str]]]] = None,
        return_time_stamps: bool = False,
        *,
        max_new_tokens: Optional[int] = None,
    ) -> List[ASRTranscription]:
        """Transcribes one input or a list of inputs; returns one result per input (a list,
        always, as the reference).

        ``context`` and ``language`` are a single value for every input or one per input;
        ``None`` keeps ``from_pretrained``'s value (no context, language detection by default);
        ``language=""`` always detects. ``return_time_stamps=True`` times every
        word with the forced aligner given to ``from_pretrained``.
        """
        items = audio if isinstance(audio, list) else [audio]
        n = len(items)
        if n == 0:
            return []
        ctxs = _broadcast(context, n, "context")
        langs = [None] * n if language is None else _broadcast(language, n, "language")
        natives = [to_native(a) for a in items]
        # Inputs sharing their options are transcribed together (batched).
        groups: Dict[Tuple[Optional[str], Optional[str]], List[int]] = {}
        for i in range(n):
            lang = langs[i]
            # None: from_pretrained's language (detection by default); "": detect.
            key = (ctxs[i], None if lang is None else str(lang).strip())
            groups.setdefault(key, []).append(i)
        out: List[Optional[ASRTranscription]] = [None] * n
        for (ctx, lang), idx in groups.items():
            results = self._native.transcribe(
                [natives[i] for i in idx],
                language=lang,
                context=ctx,
                word_timestamps=bool(return_time_stamps),
                max_new_tokens=max_new_tokens,
            )
            for i, r in zip(idx, results):
                out[i] = _transcription(r)
        return [r for r in out if r is not None]

    def stream(self, **options: Any) -> "StreamingTranscriber":
        """A live transcription session sharing this model (options as
        :class:`StreamingTranscriber`, without model/device/dtype)."""
        return StreamingTranscriber._wrap(self._native.stream(**options))


class Qwen3ForcedAligner:
    """A loaded Qwen3-ForcedAligner (the reference's ``qwen_asr.Qwen3ForcedAligner``)."""

    def __init__(self, native: "_native.Aligner"):
        self._native = native

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, "os.PathLike[str]"],
        *,
        device: Optional[str] = None,
        dtype: Any = None,
        attention: Optional[str] = None,
        offline: Optional[bool] = None,
        **kwargs: Any,
    ) -> "Qwen3ForcedAligner":
        """Loads an aligner from a local folder or a hub id (``device_map``/``dtype`` as the
        reference)."""
        dev, dt = device_and_dtype(device, dtype, kwargs, "Qwen3ForcedAligner.from_pretrained")
        return cls(
            _native.Aligner(
                os.fspath(pretrained_model_name_or_path),
                device=dev,
                dtype=dt,
                attention=attention,
                offline=offline,
            )
        )

    def align(
        self,
        audio: Union[AudioLike, List[AudioLike]],
        text: Union[str, List[str]],
        language: Union[str, List[str]],
    ) -> List[ForcedAlignResult]:
        """Times every word of ``text`` in ``audio`` (single items or lists of the same
        length; one ``language`` is used for every input). Returns one result per input."""
        items = audio if isinstance(audio, list) else [audio]
        texts = text if isinstance(text, list) else [text]
        languages = _broadcast(language, len(items), "language")
        if not (len(items) == len(texts) == len(languages)):
            raise ValueError(
                f"Batch size mismatch: audio={len(items)}, text={len(texts)}, "
                f"language={len(languages)}"
            )
        return [
            _items(self._native.align(to_native(a), t, lang))
            for a, t, lang in zip(items, texts, languages)
        ]

    def get_supported_languages(self) -> List[str]:
        return list(self._native.supported_languages())

    @property
    def max_seconds(self) -> float:
        """Longest audio one alignment covers."""
        return self._native.max_seconds


@dataclass(frozen=True)
class StreamEvent:
    """The transcript after one decode of a stream.

    ``text`` = ``fixed`` + ``unfixed``: ``fixed`` is settled, ``unfixed`` may still change.
    ``is_final`` marks the event of :meth:`StreamingTranscriber.finish`. A long stream is cut
    into segments of at most ``max_segment_seconds`` (each with its own prompt); ``segment``
    is the segment's index and ``segment_closed`` marks the decode that ended one (all of
    ``text`` is then settled).
    """

    text: str
    fixed: str
    unfixed: str
    language: str
    is_final: bool
    chunk: int
    audio_seconds: float
    raw: str
    segment: int = 0
    segment_closed: bool = False


def _event(d: Dict[str, Any]) -> StreamEvent:
    return StreamEvent(**d)


class StreamingTranscriber:
    """Live transcription: push audio as it arrives, get the transcript after every chunk.

    The result is the reference's ``streaming_transcribe`` (same chunking, prefix and rollback);
    ``mode="incremental"`` (default) computes it without re-encoding the whole stream at every
    chunk, ``mode="exact"`` re-runs everything as the reference does.

    ``max_segment_seconds`` (default 30) bounds the cost of a long stream: when a chunk would
    take the stream past it, the stream ends at the chunk's quietest point (decoded as
    ``finish`` would), its text is settled, and the rest continues as a new stream with its
    own prompt. ``None`` never cuts (the reference; its cost per chunk grows with the stream).
    """

    def __init__(
        self,
        model: Union[str, "os.PathLike[str]", Qwen3ASRModel],
        *,
        chunk_seconds: float = 2.0,
        unfixed_chunks: int = 2,
        rollback_tokens: int = 5,
        mode: str = "incremental",
        language: Optional[str] = None,
        context: str = "",
        max_new_tokens: Optional[int] = None,
        max_segment_seconds: Optional[float] = 30.0,
        device: Optional[str] = None,
        dtype: Any = None,
        offline: Optional[bool] = None,
    ):
        options = dict(
            chunk_seconds=chunk_seconds,
            unfixed_chunks=unfixed_chunks,
            rollback_tokens=rollback_tokens,
            mode=mode,
            language=language,
            context=context,
            max_new_tokens=max_new_tokens,
            max_segment_seconds=max_segment_seconds,
        )
        if isinstance(model, Qwen3ASRModel):
            if device is not None or dtype is not None:
                raise ValueError("device and dtype come from the loaded model")
            self._native = model._native.stream(**options)
        else:
            dev, dt = device_and_dtype(device, dtype, {}, "StreamingTranscriber")
            self._native = _native.StreamingTranscriber(
                os.fspath(model), device=dev, dtype=dt, offline=offline, **options
            )

    @classmethod
    def _wrap(cls, native: "_native.StreamingTranscriber") -> "StreamingTranscriber":
        st = cls.__new__(cls)
        st._native = native
        return st

    def push(self, samples: Any, sample_rate: int) -> List[StreamEvent]:
        """Pushes mono samples (float, or int16 scaled by 1/32768) at ``sample_rate`` (any
        rate; the first push fixes it). Returns one event per chunk completed."""
        data, rate = to_native((samples, sample_rate))  # type: ignore[misc]
        return [_event(e) for e in self._native.push_f32(data, rate)]

    def finish(self, samples: Any = None, sample_rate: Optional[int] = None) -> StreamEvent:
        """Ends the stream and returns the final transcript. With ``samples``: one last decode
        over what is buffered plus them (no decode per chunk in between)."""
        if samples is None:
            return _event(self._native.finish())
        if sample_rate is None:
            raise ValueError("samples need their sample_rate")
        data, rate = to_native((samples, sample_rate))  # type: ignore[misc]
        return _event(self._native.finish_with_f32(data, rate))

    def reset(self) -> None:
        """Starts a new stream with the same model and options."""
        self._native.reset()

    def transcribe_iter(self, chunks: Iterable[Any], sample_rate: int) -> Iterator[StreamEvent]:
        """Pushes every chunk of ``chunks`` and yields the events, then the final one."""
        for c in chunks:
            yield from self.push(c, sample_rate)
        yield self.finish()

    @property
    def text(self) -> str:
        return self._native.text

    @property
    def language(self) -> str:
        return self._native.language

    @property
    def audio_seconds(self) -> float:
        return self._native.audio_seconds
