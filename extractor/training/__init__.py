"""LoRA fine-tuning on exactly the prompts that ``extract`` sends.

The modules follow the data:

- ``data``: raw annotated records become chat ``messages``;
- ``tokenization``: messages become token ids, with the prompt masked;
- ``train``: the transformers ``Trainer`` fits a peft LoRA adapter;
- ``manifest``: a file beside the adapter records how it was trained;
- ``merge``: optionally, the adapter is merged into the base model.

``demo`` runs the whole story on a small stand-in model.

This ``__init__`` imports nothing heavy, so ``extract`` can check a manifest without loading torch.
"""

from __future__ import annotations

from .manifest import MANIFEST_NAME, check_adapter_manifest, read_manifest

__all__ = ["MANIFEST_NAME", "check_adapter_manifest", "read_manifest"]
