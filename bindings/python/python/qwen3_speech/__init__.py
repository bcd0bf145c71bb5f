"""qwen3_speech: a native (Rust) engine for Qwen3-ASR, Qwen3-ForcedAligner and Qwen3-TTS.

No PyTorch needed. The model classes mirror the reference packages (``qwen-asr``,
``qwen-tts``) where that helps switching: :class:`Qwen3ASRModel`, :class:`Qwen3ForcedAligner`,
:class:`Qwen3TTSModel`, :class:`Qwen3TTSTokenizer`; plus :class:`StreamingTranscriber` for
live recognition and :meth:`Qwen3TTSModel.stream` for streaming synthesis.

Long calls release the GIL and can be interrupted with Ctrl-C (``KeyboardInterrupt``); the
model stays usable afterwards. Errors are Python exceptions: ``ValueError`` for bad options,
``FileNotFoundError``/``OSError`` for files, :class:`AudioError` for unusable audio,
:class:`ModelError` for model folders, :class:`HubError` for downloads (the last three derive
from :class:`SpeechError`).
"""

from ._native import (
    CUDA_COMPILED,
    AudioError,
    HubError,
    ModelError,
    SpeechError,
    __version__,
)
from .asr import (
    ASRTranscription,
    ForcedAlignItem,
    ForcedAlignResult,
    Qwen3ASRModel,
    Qwen3ForcedAligner,
    Segment,
    StreamEvent,
    StreamingTranscriber,
)
from .tts import (
    EncodeOutput,
    Qwen3TTSModel,
    Qwen3TTSTokenizer,
    SpeechStream,
    Synthesis,
    Tokenizer,
)

__all__ = [
    "ASRTranscription",
    "AudioError",
    "CUDA_COMPILED",
    "EncodeOutput",
    "ForcedAlignItem",
    "ForcedAlignResult",
    "HubError",
    "ModelError",
    "Qwen3ASRModel",
    "Qwen3ForcedAligner",
    "Qwen3TTSModel",
    "Qwen3TTSTokenizer",
    "Segment",
    "SpeechError",
    "SpeechStream",
    "StreamEvent",
    "StreamingTranscriber",
    "Synthesis",
    "Tokenizer",
    "__version__",
]
