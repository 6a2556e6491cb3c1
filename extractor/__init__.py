"""Turn Chinese medical-record text into validated, structured JSON with a local model.

Data flow: ``records`` → ``prompts.PromptBuilder`` → a ``decoding.Decoder`` → ``checking`` (parse, normalise,
validate) → ``results.ResultRow``. ``pipeline.Extractor`` wires them together; the CLI lives in ``extractor.cli``.
"""

__version__ = "0.1.0"
