"""Inline CSS and JavaScript for the HTML report, kept as strings so the page needs no other file."""

from __future__ import annotations

REPORT_CSS = """
:root { color-scheme: light; --ink: #1d232a; --muted: #5d6670; --line: #d9dee3; --paper: #fbfbf8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.6 "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif;
       color: var(--ink); background: #f2f3f0; }
header { padding: 12px 24px; background: #24313d; color: #fff; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
main { padding: 12px 24px 48px; }
h2 { font-size: 16px; margin: 0 0 6px; }
section, nav, article { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px;
                        margin: 12px 0; }
table { border-collapse: collapse; }
table.summary th, table.stamp th { text-align: left; font-weight: 500; color: var(--muted); padding: 2px 16px 2px 0; }
table.summary td, table.stamp td { padding: 2px 0; }
ul.legend { list-style: none; padding: 0; margin: 0 0 6px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
          vertical-align: -1px; background: var(--bg); border: 1px solid var(--edge); }
nav ol { margin: 0; padding-left: 24px; columns: 3 220px; }
.badge { font-size: 12px; padding: 0 6px; border-radius: 8px; background: #e5e8eb; white-space: nowrap; }
.b-valid, .b-present { background: #d4f0dc; color: #17602f; }
.b-invalid { background: #fde8c8; color: #7a4a00; }
.b-failed { background: #f9d3d3; color: #8a1c1c; }
.b-negative { background: #dde6fb; color: #223f8a; }
.b-not_mentioned { background: #eceef0; color: #5d6670; }
.source { margin: 0 0 6px; color: var(--muted); font-size: 12px; word-break: break-all; }
.note { margin: 0 0 6px; color: #8a1c1c; }
.record-body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(400px, 2fr); gap: 16px; align-items: start; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; tab-size: 4; background: var(--paper);
        border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px; max-height: 78vh; overflow: auto;
        font-size: 14px; line-height: 1.75; }
.text.missing { color: var(--muted); }
mark.ev { background: var(--bg); color: inherit; border-radius: 2px; box-shadow: inset 0 -2px 0 var(--edge);
          padding: 0; cursor: help; }
mark.ev mark.ev { outline: 1px solid var(--edge); }
mark.st-ambiguous { background: color-mix(in srgb, var(--bg) 40%, transparent); box-shadow: none;
                    border-bottom: 2px dashed var(--edge); }
body.hide-ambiguous mark.st-ambiguous { background: transparent; border-bottom-color: transparent; }
mark.ev.active { outline: 2px solid var(--edge); background: var(--bg); }
.side { max-height: 78vh; overflow: auto; }
table.fields { width: 100%; font-size: 13px; }
table.fields th { position: sticky; top: 0; background: #eef0f2; text-align: left; font-weight: 600; }
table.fields th, table.fields td { border-bottom: 1px solid var(--line); padding: 3px 6px; vertical-align: top; }
table.fields td:nth-child(1), table.fields td:nth-child(3), table.fields td:nth-child(4) { white-space: nowrap; }
table.fields td:nth-child(2), table.fields td:nth-child(5) { overflow-wrap: anywhere; }
table.fields tbody tr { cursor: pointer; }
table.fields tbody tr:hover, table.fields tr.active { background: #f4f7fb; }
td.g-not_found { color: #8a1c1c; font-weight: 600; }
td.g-ambiguous { color: #7a4a00; }
ul.errors { color: #8a1c1c; }
pre.completion { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--paper); padding: 8px; }
@media (max-width: 900px) { .record-body { grid-template-columns: 1fr; } }
"""

REPORT_JS = """
(function () {
  function marksFor(row) {
    var article = row.closest('article');
    var path = row.getAttribute('data-path');
    return Array.prototype.filter.call(article.querySelectorAll('mark.ev'), function (mark) {
      return mark.getAttribute('data-path') === path;
    });
  }
  document.querySelectorAll('table.fields tbody tr').forEach(function (row) {
    row.addEventListener('mouseenter', function () {
      marksFor(row).forEach(function (mark) { mark.classList.add('active'); });
    });
    row.addEventListener('mouseleave', function () {
      marksFor(row).forEach(function (mark) { mark.classList.remove('active'); });
    });
    row.addEventListener('click', function () {
      var marks = marksFor(row);
      if (marks.length) { marks[0].scrollIntoView({block: 'center', behavior: 'smooth'}); }
    });
  });
  document.querySelectorAll('mark.ev').forEach(function (mark) {
    mark.addEventListener('mouseenter', function () {
      var article = mark.closest('article');
      article.querySelectorAll('table.fields tbody tr').forEach(function (row) {
        row.classList.toggle('active', row.getAttribute('data-path') === mark.getAttribute('data-path'));
      });
    });
  });
  var toggle = document.getElementById('hide-ambiguous');
  if (toggle) {
    toggle.addEventListener('change', function () { document.body.classList.toggle('hide-ambiguous', toggle.checked); });
  }
})();
"""
