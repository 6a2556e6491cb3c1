"""Records: reading ``.txt`` files, folders and JSONL into ``Record`` objects.

Every input record becomes exactly one ``Record``. A record that cannot be read (bad encoding, a broken JSONL
line, an empty text) still becomes a ``Record`` whose ``error`` holds the reason, so that the run writes one row for it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .i18n import pick

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One medical record to extract from."""

    id: str
    text: str
    source: str
    """File path, with ``:LINE`` for JSONL input."""
    error: str | None = None
    """Reason the record could not be read. The text is empty when this is set."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode a file's bytes as UTF-8 (BOM optional), UTF-16 with a BOM, or GB18030.

    Returns the text and the encoding name. Raises ``UnicodeDecodeError`` when none fits.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    # GB18030 is a superset of GBK and GB2312, which many hospital systems still export.
    return data.decode("gb18030"), "gb18030"


def read_text_file(path: Path) -> str:
    """Read one text file in any of the encodings ``decode_bytes`` accepts."""
    text, _ = decode_bytes(path.read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_records(
    inputs: Iterable[str | Path], id_key: str = "id", text_key: str = "text"
) -> Iterator[Record]:
    """Yield the records of every input path in order: ``.txt`` files, folders of them, or JSONL files.

    A folder is searched recursively for ``*.txt``, in sorted path order. Raises ``InputError`` only for a
    path that does not exist or has an unsupported type; a problem inside one record becomes that
    record's ``error``.
    """
    for raw_path in inputs:
        path = Path(raw_path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                logger.warning("no .txt files under %s", path)
            for file in files:
                yield _read_txt(file, base=path)
        elif path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson"):
            yield from _read_jsonl(path, id_key, text_key)
        elif path.is_file() and path.suffix.lower() == ".txt":
            yield _read_txt(path, base=path.parent)
        elif not path.exists():
            raise InputError(
                pick(
                    "找不到输入：{path}。请检查路径，或传入 .txt 文件、文件夹或 JSONL 文件。",
                    "Input not found: {path}. Check the path, or pass a .txt file, a folder or a JSONL file.",
                    path=path,
                )
            )
        else:
            raise InputError(
                pick(
                    "不支持的输入类型：{path}。请传入 .txt 文件、包含 .txt 的文件夹，或 .jsonl 文件。",
                    "Unsupported input: {path}. Pass a .txt file, a folder of .txt files or a .jsonl file.",
                    path=path,
                )
            )


def _read_txt(path: Path, base: Path) -> Record:
    record_id = path.relative_to(base).with_suffix("").as_posix()
    try:
        text = read_text_file(path)
    except UnicodeDecodeError:
        message = pick(
            "无法解码（既不是 UTF-8 也不是 GB18030）。请将文件另存为 UTF-8 后重试。",
            "Cannot decode the file as UTF-8 or GB18030. Save it as UTF-8 and run again.",
        )
        return Record(id=record_id, text="", source=str(path), error=message)
    if not text.strip():
        return Record(id=record_id, text="", source=str(path), error=_empty_message())
    return Record(id=record_id, text=text, source=str(path))


def _read_jsonl(path: Path, id_key: str, text_key: str) -> Iterator[Record]:
    try:
        content, _ = decode_bytes(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise InputError(
            pick(
                "无法解码 {path}（既不是 UTF-8 也不是 GB18030）。请另存为 UTF-8。",
                "Cannot decode {path} as UTF-8 or GB18030. Save it as UTF-8.",
                path=path,
            )
        ) from exc
    for line_number, line in enumerate(content.splitlines(), start=1):
        if line.strip():
            yield _parse_jsonl_line(line, f"{path}:{line_number}", f"{path.stem}-{line_number}", id_key, text_key)


def _parse_jsonl_line(line: str, source: str, fallback_id: str, id_key: str, text_key: str) -> Record:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        message = pick(
            "这一行不是合法的 JSON（{error}）。请修正该行或将其删除。",
            "This line is not valid JSON ({error}). Fix or remove the line.",
            error=exc.msg,
        )
        return Record(id=fallback_id, text="", source=source, error=message)
    if not isinstance(item, dict):
        message = pick("这一行应为 JSON 对象。", "This line must be a JSON object.")
        return Record(id=fallback_id, text="", source=source, error=message)

    record_id = str(item.get(id_key, fallback_id))
    text = item.get(text_key)
    if not isinstance(text, str):
        message = pick(
            "缺少文本字段 \"{key}\"。请补上，或用 --text-key 指定文本所在的字段名。",
            'Missing text field "{key}". Add it, or name the text field with --text-key.',
            key=text_key,
        )
        return Record(id=record_id, text="", source=source, error=message)
    if not text.strip():
        return Record(id=record_id, text="", source=source, error=_empty_message())
    return Record(id=record_id, text=text, source=source)


def _empty_message() -> str:
    return pick("病历文本为空，无内容可抽取。", "The record text is empty, so there is nothing to extract.")


TRUNCATION_MARKER = "\n……（中间部分已省略）……\n"


def truncate_middle(text: str, max_chars: int, marker: str = TRUNCATION_MARKER) -> str:
    """Shorten a text to about ``max_chars`` by cutting out its middle.

    Record headers (name, department, diagnosis on admission) and discharge orders sit at the two ends of
    most Chinese records, so the middle is the cheapest part to lose.
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    keep = max(0, max_chars - len(marker))
    head = keep - keep // 3
    tail = keep - head
    return text[:head] + marker + (text[-tail:] if tail else "")
