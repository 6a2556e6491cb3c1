"""The HTML report in headless Chromium: it renders, and each highlight's DOM text matches its offsets."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from extractor.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs the Debian packages chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)",
    ),
]

# Invented records. The second has markup characters, a tab, full-width text and a value across a line break.
RECORDS = [
    {"id": "b1", "text": "患者李雷，男，52岁。\n主诉：胸闷2周。\n既往史：否认糖尿病史。"},
    {"id": "b2", "text": "姓名：韩梅梅\t科别：呼吸内科\n主诉：咳嗽\n咳痰5天 <加重> & 发热。\n体温：３９.２℃，复查体温39.2℃。"},
]
ROWS = [
    {"id": "b1", "source": "", "valid": True, "status": "valid", "errors": [], "changes": [
        {"path": "$.年龄", "original": "52岁", "normalized": 52, "rule": "age"}],
     "fields": {"姓名": "李雷", "年龄": 52, "主诉": "胸闷2周", "既往史": "否认糖尿病史", "诊断": ["糖尿病"]},
     "prompt_tokens": 200, "completion_tokens": 40, "seconds": 1.0, "stamp": {"model": "tiny"}},
    {"id": "b2", "source": "", "valid": True, "status": "valid", "errors": [], "changes": [],
     "fields": {"姓名": "韩梅梅", "科别": "呼吸内科", "主诉": "咳嗽 咳痰5天", "症状": "咳痰5天 <加重>", "体温": 39.2,
                "过敏史": "青霉素"},
     "prompt_tokens": 210, "completion_tokens": 50, "seconds": 1.2, "stamp": {"model": "tiny"}},
]
# (record index, path, start, end, text), counted by hand on RECORDS.
EXPECTED = [
    (0, "$.姓名", 2, 4, "李雷"),
    (0, "$.年龄", 7, 10, "52岁"),  # found through the original text of the normalised age
    (0, "$.主诉", 15, 19, "胸闷2周"),
    (0, "$.既往史", 25, 31, "否认糖尿病史"),
    (0, "$.诊断[0]", 27, 30, "糖尿病"),
    (1, "$.姓名", 3, 6, "韩梅梅"),
    (1, "$.科别", 10, 14, "呼吸内科"),
    (1, "$.主诉", 18, 25, "咳嗽\n咳痰5天"),
    (1, "$.症状", 21, 30, "咳痰5天 <加重>"),  # crosses 主诉, so it is drawn in two pieces
    (1, "$.体温", 40, 44, "３９.２"),
    (1, "$.体温", 50, 54, "39.2"),
]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def report_path(tmp_path: Path) -> Path:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    out = tmp_path / "report.html"
    write_report(results, out, records_path=records)
    return out


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium for the module, with a fresh profile folder."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1400,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield browser
    browser.quit()


READ_MARKS = """
return Array.from(document.querySelectorAll('mark.ev')).map(function (mark) {
  return {record: mark.closest('article').id, span: mark.dataset.span, path: mark.dataset.path,
          field: mark.dataset.field, start: +mark.dataset.start, end: +mark.dataset.end, text: mark.textContent};
});
"""


def test_report_renders_and_offsets_match(report_path, driver, tmp_path):
    driver.get(report_path.as_uri())

    screenshot = driver.get_screenshot_as_png()
    (tmp_path / "report.png").write_bytes(screenshot)
    assert png_size(screenshot) == (1400, driver.execute_script("return window.innerHeight"))
    assert len(screenshot) > 20_000

    marks = driver.execute_script(READ_MARKS)
    joined: dict[str, dict] = {}
    for mark in marks:
        entry = joined.setdefault(mark["span"], {**mark, "text": ""})
        entry["text"] += mark["text"]
    found = sorted((int(m["record"].split("-")[1]), m["path"], m["start"], m["end"], m["text"]) for m in joined.values())
    assert found == sorted(EXPECTED)


def test_record_text_survives_in_dom(report_path, driver):
    driver.get(report_path.as_uri())
    panes = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.text[data-record]')).map(function (d) { return d.textContent; });"
    )
    assert panes == [r["text"] for r in RECORDS]


def test_not_found_value_has_no_mark(report_path, driver):
    driver.get(report_path.as_uri())
    paths = driver.execute_script("return Array.from(document.querySelectorAll('#rec-1 mark')).map(m => m.dataset.path);")
    assert "$.过敏史" not in paths
    cell = driver.execute_script("return document.querySelector('#rec-1 tr[data-path=\"$.过敏史\"] td.g-not_found').textContent;")
    assert cell == "not found"


def test_hovering_field_row_activates_marks(report_path, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.get(report_path.as_uri())
    row = driver.find_element(By.CSS_SELECTOR, '#rec-1 tr[data-path="$.体温"]')
    ActionChains(driver).move_to_element(row).perform()
    active = driver.execute_script("return Array.from(document.querySelectorAll('mark.active')).map(m => m.dataset.path);")
    assert active == ["$.体温", "$.体温"]
