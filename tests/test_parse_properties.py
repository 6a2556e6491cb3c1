"""Property-based checks: the parser never raises, sound JSON survives, and nothing invalid is called valid."""

from __future__ import annotations

import json

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractor.checking import check_text
from extractor.parsing import parse_completion
from extractor.paths import SCHEMAS_DIR
from extractor.schema import load_schema

SCHEMA = load_schema(SCHEMAS_DIR / "admission.json")
CODES = {"truncated", "no_json", "not_object", "nan", "duplicate_key", "loop", "copied_text", "invalid_json"}
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that stress a string-aware scanner: JSON syntax, Chinese quotes and punctuation, escapes.
TRICKY = '{}[]:,"\'\\/*`#“”‘’「」：，；、 \n\tabcNaInfyTrueFalseNone0123456789.-+e患者男女岁否认<>'
tricky_text = st.text(alphabet=TRICKY, max_size=12)
short_text = st.text(max_size=12)
value_text = st.one_of(tricky_text, short_text)

extraction = st.fixed_dictionaries(
    {},
    optional={
        "姓名": st.one_of(st.none(), value_text),
        "性别": st.sampled_from(["男", "女", None]),
        "年龄": st.one_of(st.none(), st.integers(min_value=0, max_value=130)),
        "入院日期": st.one_of(st.none(), st.dates().map(lambda d: d.isoformat())),
        "主诉": st.one_of(st.none(), value_text),
        "入院诊断": st.one_of(st.none(), st.lists(value_text, max_size=3)),
        "用药": st.lists(
            st.fixed_dictionaries({"药名": value_text}, optional={"剂量": st.one_of(st.none(), value_text)}),
            max_size=2,
        ),
    },
)


def is_schema_valid(value: object) -> bool:
    validator_class = jsonschema.validators.validator_for(SCHEMA.data)
    validator = validator_class(SCHEMA.data, format_checker=validator_class.FORMAT_CHECKER)
    return validator.is_valid(value)


def assert_own_outcome(text: str) -> None:
    result = parse_completion(text, schema=SCHEMA)
    if result.rejection is None:
        assert isinstance(result.value, dict)
    else:
        assert result.rejection.code in CODES
        assert result.rejection.message
        assert result.rejection.feedback
        assert result.value is None


@PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    assert_own_outcome(text)


@PROPERTY_SETTINGS
@given(st.text(alphabet=TRICKY, max_size=300))
def test_random_syntax_soup_never_raises(text: str) -> None:
    assert_own_outcome(text)


@PROPERTY_SETTINGS
@given(extraction, st.sampled_from([None, 2]), st.sampled_from(["{}", "```json\n{}\n```", "好的：\n{}\n以上。"]))
def test_sound_json_round_trips(value: dict, indent: int | None, wrapper: str) -> None:
    text = wrapper.replace("{}", json.dumps(value, ensure_ascii=False, indent=indent), 1)
    result = parse_completion(text, schema=SCHEMA)
    assert result.rejection is None, result.rejection
    assert result.value == value


@PROPERTY_SETTINGS
@given(extraction, st.data())
def test_cut_json_never_accepted(value: dict, data: st.DataObject) -> None:
    text = json.dumps(value, ensure_ascii=False)
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    result = parse_completion(text[:cut], schema=SCHEMA)
    assert result.rejection is not None
    assert result.rejection.code in {"truncated", "no_json"}


@st.composite
def mutated_json(draw: st.DrawFn) -> str:
    text = json.dumps(draw(extraction), ensure_ascii=False, indent=draw(st.sampled_from([None, 2])))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        kind = draw(st.sampled_from(["drop", "cut", "insert"]))
        if kind == "drop" and text:
            position = min(position, len(text) - 1)
            text = text[:position] + text[position + 1:]
        elif kind == "cut":
            text = text[:position]
        else:
            text = text[:position] + draw(st.one_of(tricky_text, short_text)) + text[position:]
    return text


@PROPERTY_SETTINGS
@given(mutated_json())
def test_mutations_never_raise(text: str) -> None:
    assert_own_outcome(text)


@PROPERTY_SETTINGS
@given(mutated_json())
def test_check_never_calls_invalid_valid(text: str) -> None:
    checked = check_text(text, SCHEMA)
    if checked.valid:
        assert is_schema_valid(checked.fields)
    for error in checked.errors:
        assert error.path.startswith("$")
        assert error.message
        assert str(error)
