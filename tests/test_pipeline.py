from __future__ import annotations

from pathlib import Path

from extractor.decoding import Completion, ScriptedDecoder
from extractor.pipeline import Extractor
from extractor.prompts import PromptBuilder
from extractor.records import Record
from extractor.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
VALID = '{"姓名": "周某", "性别": "男", "年龄": 58, "科别": "心内科", "入院诊断": ["冠心病"]}'
INVALID_TYPE = '{"姓名": "周某", "性别": "男", "年龄": "很老", "科别": "心内科", "入院诊断": ["冠心病"]}'


def make_extractor(script, max_retries: int = 1, batch_size: int = 8) -> tuple[Extractor, ScriptedDecoder]:
    schema = load_schema(ROOT / "schemas" / "basic_info.json")
    builder = PromptBuilder(ROOT / "prompts" / "default.j2", schema, [], mode="inline")
    decoder = ScriptedDecoder(script)
    return Extractor(builder, decoder, max_retries=max_retries, batch_size=batch_size), decoder


def test_one_row_per_record_even_when_some_fail() -> None:
    records = [
        Record("r1", "病历一", "a.txt"),
        Record("r2", "", "b.txt", error="cannot decode"),
        Record("r3", "病历三", "c.txt"),
    ]
    extractor, _ = make_extractor(lambda request: VALID if "病历一" in request.record_text else "no json here")
    rows = list(extractor.run(records))
    assert [r.id for r in rows] == ["r1", "r2", "r3"]
    assert [r.status for r in rows] == ["valid", "failed", "failed"]
    assert rows[1].errors[0]["message"] == "cannot decode"
    assert rows[1].attempts == []


def test_order_kept_across_batches() -> None:
    records = [Record(f"r{i}", f"病历{i}", "x") for i in range(7)]
    extractor, decoder = make_extractor(lambda request: VALID, batch_size=3)
    rows = list(extractor.run(records))
    assert [r.id for r in rows] == [f"r{i}" for i in range(7)]
    assert decoder.batches == [3, 3, 1]


def test_reask_sends_previous_answer_and_errors() -> None:
    extractor, decoder = make_extractor([INVALID_TYPE, VALID])
    [row] = list(extractor.run([Record("r1", "病历", "x")]))
    assert row.valid
    assert len(row.attempts) == 2
    assert row.attempts[0].completion == INVALID_TYPE
    assert row.attempts[0].errors
    retry_messages = decoder.requests[1].messages
    assert retry_messages[-2] == {"role": "assistant", "content": INVALID_TYPE}
    assert "$.年龄" in retry_messages[-1]["content"]


def test_retries_are_bounded() -> None:
    extractor, decoder = make_extractor(lambda request: INVALID_TYPE, max_retries=2)
    [row] = list(extractor.run([Record("r1", "病历", "x")]))
    assert not row.valid
    assert row.status == "invalid"
    assert len(row.attempts) == 3
    assert len(decoder.requests) == 3
    assert row.field_status["年龄"] == "failed"
    assert row.field_status["姓名"] == "present"


def test_no_retry_when_disabled() -> None:
    extractor, decoder = make_extractor(lambda request: "garbage", max_retries=0)
    [row] = list(extractor.run([Record("r1", "病历", "x")]))
    assert row.status == "failed"
    assert row.fields is None
    assert len(decoder.requests) == 1


def test_decoder_error_is_not_retried() -> None:
    too_long = Completion(text="", prompt_tokens=9000, error="prompt exceeds the context")
    extractor, decoder = make_extractor([too_long])
    [row] = list(extractor.run([Record("r1", "病历", "x")]))
    assert row.status == "failed"
    assert row.errors[0]["keyword"] == "decoder"
    assert len(decoder.requests) == 1


def test_alternative_sequence_used_when_first_invalid() -> None:
    completion = Completion(text=INVALID_TYPE, alternatives=["garbage", VALID])
    extractor, decoder = make_extractor([completion])
    [row] = list(extractor.run([Record("r1", "病历", "x")]))
    assert row.valid
    assert row.fields["年龄"] == 58
    assert len(decoder.requests) == 1


def test_rows_carry_stamp_and_counts() -> None:
    extractor, _ = make_extractor([Completion(text=VALID, prompt_tokens=100, completion_tokens=20, seconds=0.5)])
    [row] = list(extractor.run([Record("r1", "病历", "x")]))
    data = row.to_dict()
    assert data["prompt_tokens"] == 100
    assert data["completion_tokens"] == 20
    assert data["n_attempts"] == 1
    assert data["stamp"]["schema"] == "basic_info"
    assert data["stamp"]["examples_mode"] == "inline"
    assert data["stamp"]["backend"] == "scripted"
    assert data["record_sha256"] == Record("r1", "病历", "x").sha256


def test_rows_locate_values_in_record() -> None:
    text = "患者周某，男，58岁，心内科。入院诊断：冠心病"
    extractor, _ = make_extractor([VALID])
    [row] = list(extractor.run([Record("r1", text, "x")]))
    [[start, end]] = row.spans["$.姓名"]["spans"]
    assert text[start:end] == "周某"
    [[start, end]] = row.spans["$.入院诊断[0]"]["spans"]
    assert text[start:end] == "冠心病"
    assert row.spans["$.年龄"]["status"] == "found"


def test_decoded_offsets_are_kept() -> None:
    text = "周某周某，男，58岁，心内科，冠心病"
    completion = Completion(text=VALID, spans={"$.姓名": [[2, 4]]})
    extractor, _ = make_extractor([completion])
    [row] = list(extractor.run([Record("r1", text, "x")]))
    assert row.spans["$.姓名"]["spans"] == [[2, 4]]
    assert row.spans["$.姓名"]["source"] == "decoding"
