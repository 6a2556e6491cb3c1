"""LoRA fine-tuning on exactly the prompts that ``extract`` sends.

The flow is: raw annotated records → chat ``messages`` (``data``) → token ids with the prompt masked
(``tokenization``) → a peft LoRA adapter trained with the transformers ``Trainer`` (``train``) → a manifest
beside the adapter (``manifest``) → optionally a merged model (``merge``). ``demo`` runs the whole story on a
small stand-in model.

This ``__init__`` imports nothing heavy, so ``extract`` can check a manifest without loading torch.
"""

from __future__ import annotations

from .manifest import MANIFEST_NAME, check_adapter_manifest, read_manifest

__all__ = ["MANIFEST_NAME", "check_adapter_manifest", "read_manifest"]
