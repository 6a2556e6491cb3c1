"""Locations of the bundled prompts, schemas and examples, and resolution of names given on the command line."""

from __future__ import annotations

from pathlib import Path

# The bundled folders sit beside the package in a checkout (``pip install -e .``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = PROJECT_ROOT / "prompts"
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
EXAMPLES_DIR = PROJECT_ROOT / "examples"
DEFAULT_TEMPLATE = PROMPTS_DIR / "default.j2"


def resolve(value: str | Path, bundled_dir: Path, suffix: str) -> Path:
    """Resolve a path as given, else as a name inside a bundled folder (``admission`` → ``schemas/admission.json``).

    Returns the path as given when nothing matches, so the caller's not-found message names what the user typed.
    """
    path = Path(value)
    if path.exists():
        return path
    for candidate in (bundled_dir / path, bundled_dir / f"{path}{suffix}"):
        if candidate.exists():
            return candidate
    return path


def default_examples_for(schema_path: Path) -> Path | None:
    """Return ``examples/<schema name>.jsonl`` when it exists, so bundled schemas come with their examples."""
    candidate = EXAMPLES_DIR / f"{schema_path.stem}.jsonl"
    return candidate if candidate.exists() else None
