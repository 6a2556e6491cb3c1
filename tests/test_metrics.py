"""Scoring against gold on a planted set whose expected numbers are worked out by hand in the comments."""

from __future__ import annotations

from collections import Counter

import pytest

from extractor.errors import InputError
from extractor.metrics import (
    EMPTY_LIST,
    canonical,
    evaluate,
    load_gold,
    load_predictions,
    scored_paths,
    split_items,
    units,
)
from extractor.paths import SCHEMAS_DIR
from extractor.schema import load_schema

GOLD = [
    {"id": "g1", "fields": {"姓名": "张三", "年龄": "45", "诊断": ["高血压", "糖尿病", "糖尿病"],
                            "生命体征": {"体温": 36.5, "脉搏": 80}, "过敏史": "否认药物过敏史",
                            "用药": [{"药名": "阿司匹林", "剂量": "100mg"}]}},
    {"id": "g2", "fields": {"姓名": "李四", "年龄": 60, "诊断": ["肺炎"], "生命体征": {"体温": 38.2, "脉搏": None},
                            "过敏史": None, "用药": []}},
    {"id": "g3", "fields": {"姓名": "王五", "年龄": 30, "诊断": ["胃炎"], "生命体征": None, "过敏史": None, "用药": None}},
    {"id": "g4", "fields": {"姓名": "赵六", "年龄": 50, "诊断": ["骨折"], "生命体征": None, "过敏史": "青霉素过敏",
                            "用药": None}},
    {"id": "g5", "fields": {"姓名": "孙七", "年龄": 70, "诊断": ["冠心病"], "生命体征": None, "过敏史": None, "用药": None}},
]

PREDICTIONS = [
    # g1: name with a blank, age as a number, one of the two 糖尿病 missing, full-width dose.
    {"id": "g1", "valid": True, "errors": [], "prompt_tokens": 100, "completion_tokens": 20, "seconds": 1.0,
     "fields": {"姓名": "张 三", "年龄": 45, "诊断": ["高血压", "糖尿病"], "生命体征": {"体温": 36.5, "脉搏": 80},
                "过敏史": "否认药物过敏史", "用药": [{"药名": "阿司匹林", "剂量": "１００ｍｇ"}]}},
    # g2: wrong age, an extra diagnosis, a pulse that gold lacks (and that failed validation), and 用药 null
    # where gold has [] (explicitly none).
    {"id": "g2", "valid": False, "prompt_tokens": 120, "completion_tokens": 30, "seconds": 2.0,
     "errors": [{"path": "$.生命体征.脉搏", "message": "90 is not valid", "keyword": "maximum"}],
     "fields": {"姓名": "李四", "年龄": 61, "诊断": ["肺炎", "支气管炎"], "生命体征": {"体温": 38.2, "脉搏": 90},
                "过敏史": None, "用药": None}},
    # g3: the completion could not be parsed.
    {"id": "g3", "valid": False, "fields": None, "prompt_tokens": 110, "completion_tokens": 5, "seconds": 0.5,
     "errors": [{"path": "$", "message": "invalid JSON", "keyword": "invalid_json"}]},
    # g4: no prediction row at all.
    # g5: exact after normalising: "70" equals 70, a blank string is null, an all-null object equals null.
    {"id": "g5", "valid": True, "errors": [], "prompt_tokens": 90, "completion_tokens": 10, "seconds": 0.5,
     "fields": {"姓名": "孙七", "年龄": "70", "诊断": ["冠心病"], "生命体征": {"体温": None, "脉搏": None},
                "过敏史": " ", "用药": None}},
    # Not in gold: reported, never scored, its costs ignored.
    {"id": "x9", "valid": True, "errors": [], "prompt_tokens": 1000, "completion_tokens": 1000, "seconds": 10.0,
     "fields": {"姓名": "周八"}},
]


@pytest.fixture(scope="module")
def metrics():
    return evaluate(GOLD, PREDICTIONS)


def counts(score):
    return (score.tp, score.fp, score.fn)


def test_field_counts_normalised(metrics):
    fields = metrics.fields
    # 姓名: TP g1 ("张 三" folds to 张三), g2, g5; FN g3 (failed), g4 (missing).
    assert counts(fields["姓名"]) == (3, 0, 2)
    # 年龄: TP g1 ("45" == 45), g5 ("70" == 70); g2 61 vs 60 is FP 1 + FN 1; FN g3, g4. So FN = 3.
    assert counts(fields["年龄"]) == (2, 1, 3)
    # 诊断: g1 gold {高血压, 糖尿病×2} vs {高血压, 糖尿病} → TP 2, FN 1; g2 TP 1 (肺炎), FP 1 (支气管炎);
    # g3, g4 FN 1 each; g5 TP 1. TP = 4, FP = 1, FN = 3.
    assert counts(fields["诊断"]) == (4, 1, 3)
    # 生命体征.体温: TP g1, g2. 脉搏: TP g1; g2 gold null, predicted 90 → FP 1.
    assert counts(fields["生命体征.体温"]) == (2, 0, 0)
    assert counts(fields["生命体征.脉搏"]) == (1, 1, 0)
    # 过敏史: TP g1; FN g4 (missing); g5 " " is null, so nothing.
    assert counts(fields["过敏史"]) == (1, 0, 1)
    # 用药: TP g1 (the dose folds to 100mg); g2 gold [] is one "none" unit, predicted null → FN 1.
    assert counts(fields["用药"]) == (1, 0, 1)


def test_failed_share_of_false_negatives(metrics):
    # Only g3 (fields null) and g4 (missing) contribute: 姓名, 年龄 and 诊断 one each per record.
    assert metrics.fields["姓名"].fn_failed == 2
    assert metrics.fields["诊断"].fn_failed == 2
    assert metrics.fields["过敏史"].fn_failed == 1
    assert metrics.fields["生命体征.脉搏"].fn_failed == 0


def test_micro_and_macro(metrics):
    micro = metrics.micro
    # TP = 3+2+4+2+1+1+1 = 14; FP = 0+1+1+0+1+0+0 = 3; FN = 2+3+3+0+0+1+1 = 10.
    assert counts(micro) == (14, 3, 10)
    assert micro.precision == pytest.approx(14 / 17)
    assert micro.recall == pytest.approx(14 / 24)
    assert micro.f1 == pytest.approx(28 / 41)  # 2·14 / (2·14 + 3 + 10)
    # Per-field F1 = 2TP/(2TP+FP+FN): 姓名 6/8, 年龄 4/8, 诊断 8/12, 体温 1, 脉搏 2/3, 过敏史 2/3, 用药 2/3.
    expected = (6 / 8 + 4 / 8 + 8 / 12 + 1 + 2 / 3 + 2 / 3 + 2 / 3) / 7
    assert metrics.macro_f1 == pytest.approx(expected)


def test_record_outcomes(metrics):
    outcomes = {r.id: (r.outcome, r.exact) for r in metrics.records}
    assert outcomes == {
        "g1": ("scored", False),
        "g2": ("scored", False),
        "g3": ("failed", False),
        "g4": ("missing", False),
        "g5": ("scored", True),
    }
    wrong = {r.id: r.wrong_paths for r in metrics.records}
    assert wrong["g1"] == ["诊断"]
    assert wrong["g2"] == ["年龄", "诊断", "生命体征.脉搏", "用药"]


def test_run_rates(metrics):
    assert metrics.n_gold == 5
    assert metrics.exact_match_rate == pytest.approx(1 / 5)
    assert metrics.schema_compliance == pytest.approx(2 / 5)  # g1 and g5 are valid
    assert metrics.parse_failure_rate == pytest.approx(1 / 5)  # g3
    assert (metrics.n_valid, metrics.n_invalid, metrics.n_failed, metrics.n_missing) == (2, 1, 1, 1)
    assert metrics.extra_ids == ["x9"]


def test_costs_exclude_extra_ids(metrics):
    # Rows g1, g2, g3, g5: tokens (100+20) + (120+30) + (110+5) + (90+10) = 485 over 4 rows.
    assert metrics.mean_tokens == pytest.approx(485 / 4)
    # Seconds 1.0 + 2.0 + 0.5 + 0.5 = 4.0 over 4 rows.
    assert metrics.mean_seconds == pytest.approx(1.0)


def test_status_counts(metrics):
    # 脉搏: g1 present, g2 failed (validation error), g3 failed (parse), g4 failed (missing), g5 null.
    assert metrics.fields["生命体征.脉搏"].predicted_status == Counter(present=1, failed=3, not_mentioned=1)
    # 过敏史: g1 negative (否认…), g2 null, g3/g4 failed, g5 blank → not mentioned.
    assert metrics.fields["过敏史"].predicted_status == Counter(negative=1, not_mentioned=2, failed=2)
    # Gold 过敏史: g1 negative, g4 present, the rest null. Gold 用药: g2 [] is negative.
    assert metrics.fields["过敏史"].gold_status == Counter(negative=1, present=1, not_mentioned=3)
    assert metrics.fields["用药"].gold_status == Counter(present=1, negative=1, not_mentioned=3)
    assert metrics.status_totals()["failed"] == 2 * 7 + 1  # g3 and g4 on all 7 paths, plus g2's 脉搏


def test_strict_mode_counts():
    strict = evaluate(GOLD, PREDICTIONS, normalize_strings=False)
    # 姓名: "张 三" ≠ 张三 → g1 FP 1, FN 1; TP g2, g5; FN g3, g4.
    assert counts(strict.fields["姓名"]) == (2, 1, 3)
    # 年龄: "45" ≠ 45 (g1), 61 ≠ 60 (g2), "70" ≠ 70 (g5) → FP 3; FN those 3 plus g3, g4.
    assert counts(strict.fields["年龄"]) == (0, 3, 5)
    # 过敏史: g5's " " is now a value → FP 1.
    assert counts(strict.fields["过敏史"]) == (1, 1, 1)
    # 用药: the full-width dose differs → g1 FP 1, FN 1; g2 FN 1.
    assert counts(strict.fields["用药"]) == (0, 1, 2)
    # TP = 2+0+4+2+1+1+0 = 10; FP = 1+3+1+0+1+1+1 = 8; FN = 3+5+3+0+0+1+2 = 14.
    assert counts(strict.micro) == (10, 8, 14)
    assert strict.micro.f1 == pytest.approx(20 / 42)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("ＣＩＮ　Ⅲ级（术后）", "cin III级(术后)"),  # full width, ideographic space, Roman numeral, brackets
        ("肺部感染，颈动脉硬化", "肺部感染,颈动脉硬化"),
        ("肺、纵膈", "肺,纵膈"),
        ("【血常规】", "[血常规]"),
        ("左下肢\n疼痛", "左下肢 疼痛"),
        ("8", 8),
        ("38.50", 38.5),
        (8, 8.0),
        ({"药名": "阿莫西林", "剂量": None}, {"药名": "阿莫西林"}),
        (["a", "b"], ["b", "a"]),
    ],
)
def test_canonical_equal_when_normalised(left, right):
    assert canonical(left) == canonical(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [("张三", "张四"), (True, 1), ("8岁", 8), (["a", "a"], ["a"]), ({"药名": "a", "剂量": "1g"}, {"药名": "a"})],
)
def test_canonical_differs(left, right):
    assert canonical(left) != canonical(right)


def test_strict_canonical_keeps_text():
    assert canonical("8", normalize_strings=False) != canonical(8, normalize_strings=False)
    assert canonical("ａ", normalize_strings=False) != canonical("a", normalize_strings=False)
    assert canonical(8, normalize_strings=False) == canonical(8.0, normalize_strings=False)


def test_units_of_lists():
    assert units([]) == Counter([EMPTY_LIST])
    assert units(None) == Counter()
    assert units(["a", "a", "b"]) == Counter({("string", "a"): 2, ("string", "b"): 1})
    assert units("   ") == Counter()


def test_multiset_duplicates():
    gold = [{"id": "1", "fields": {"诊断": ["a", "a", "b"]}}]
    predicted = [{"id": "1", "valid": True, "fields": {"诊断": ["a", "b", "b"]}}]
    # {a:2, b:1} ∩ {a:1, b:2} = {a:1, b:1} → TP 2, FP 1 (second b), FN 1 (second a).
    assert counts(evaluate(gold, predicted).fields["诊断"]) == (2, 1, 1)


def test_split_items_respects_brackets():
    assert split_items("胃癌(腺癌，IV期,ECOG 1分),高血压；糖尿病") == ["胃癌(腺癌，IV期,ECOG 1分)", "高血压", "糖尿病"]
    assert split_items("单一诊断") == ["单一诊断"]


def test_gold_string_against_predicted_list():
    gold = [{"id": "1", "fields": {"入院诊断": "肺部感染,颈动脉硬化(术后)"}}]
    predicted = [{"id": "1", "valid": True, "fields": {"入院诊断": ["肺部感染", "颈动脉硬化（术后）", "高血压"]}}]
    normalised = evaluate(gold, predicted)
    assert counts(normalised.fields["入院诊断"]) == (2, 1, 0)
    # Strict: the gold string is one unit and matches no list element.
    assert counts(evaluate(gold, predicted, normalize_strings=False).fields["入院诊断"]) == (0, 3, 1)


def test_schema_orders_nested_paths():
    schema = load_schema(SCHEMAS_DIR / "admission.json")
    gold = [{"id": "1", "fields": {"年龄": 5, "姓名": "甲", "生命体征": None, "用药": None}}]
    predicted = [{"fields": {"生命体征": {"体温": 37.0, "脉搏": 80, "呼吸": None, "收缩压": None, "舒张压": None}}}]
    paths = [".".join(p) for p in scored_paths(schema, [g["fields"] for g in gold], [p["fields"] for p in predicted])]
    # Schema order, only fields gold annotates, nested objects per leaf, arrays as one path.
    assert paths == ["姓名", "年龄", "生命体征.体温", "生命体征.脉搏", "生命体征.呼吸", "生命体征.收缩压", "生命体征.舒张压", "用药"]


def test_fields_gold_does_not_annotate_are_not_scored():
    gold = [{"id": "1", "fields": {"姓名": "甲"}}]
    predicted = [{"id": "1", "valid": True, "fields": {"姓名": "甲", "主诉": "头痛"}}]
    metrics = evaluate(gold, predicted)
    assert list(metrics.fields) == ["姓名"]
    assert metrics.unscored_fields == ["主诉"]
    assert metrics.micro.f1 == 1.0


def test_object_where_string_expected_is_scored():
    # The model wrote a string where the schema wants an object: the string is a false positive at the parent.
    gold = [{"id": "1", "fields": {"生命体征": {"体温": 37.0}}}]
    predicted = [{"id": "1", "valid": False, "fields": {"生命体征": "正常"}}]
    metrics = evaluate(gold, predicted)
    assert counts(metrics.fields["生命体征"]) == (0, 1, 0)
    assert counts(metrics.fields["生命体征.体温"]) == (0, 0, 1)


def test_null_and_empty_list_are_different():
    gold = [{"id": "1", "fields": {"用药": [], "过敏史": None}}]
    predicted = [{"id": "1", "valid": True, "fields": {"用药": None, "过敏史": []}}]
    metrics = evaluate(gold, predicted)
    assert counts(metrics.fields["用药"]) == (0, 0, 1)
    assert counts(metrics.fields["过敏史"]) == (0, 1, 0)
    assert metrics.records[0].exact is False


def test_undefined_scores_are_none():
    metrics = evaluate([{"id": "1", "fields": {"a": None}}], [{"id": "1", "valid": True, "fields": {"a": None}}])
    assert metrics.micro.f1 is None
    assert metrics.macro_f1 is None
    assert metrics.exact_match_rate == 1.0


def test_duplicate_ids_raise():
    with pytest.raises(InputError, match='"1" appears twice'):
        evaluate([{"id": "1", "fields": {}}, {"id": 1, "fields": {}}], [])


def test_load_gold_names_bad_line(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": "a", "fields": {}}\n\n{"id": "b", "fields": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"gold\.jsonl:3 is not valid JSON"):
        load_gold(path)


def test_load_gold_requires_fields(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": "a", "fields": ["x"]}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r'gold\.jsonl:1 has no "fields" object'):
        load_gold(path)


def test_load_predictions_requires_id(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"id": "a", "fields": null}\n{"fields": {}}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r'run\.jsonl:2 has no "id"'):
        load_predictions(path)


def test_load_predictions_rejects_repeated_id(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"id": "a", "fields": null}\n{"id": "a", "fields": {}}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r'run\.jsonl:2 repeats id "a" from line 1'):
        load_predictions(path)
