"""Decoders. ``base`` and ``fake`` import no torch; ``transformers_backend`` does, and is imported on demand."""

from .base import Completion, CompletionRequest, Decoder, GenerationSettings
from .fake import ScriptedDecoder

__all__ = ["Completion", "CompletionRequest", "Decoder", "GenerationSettings", "ScriptedDecoder"]
