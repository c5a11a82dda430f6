# -*- coding: utf-8 -*-
"""Fleet report: after a playbook run, one Markdown, HTML and JSON file with a row per Pi.

The callback only collects (which tasks changed, what failed, which hosts were never reached, the
gathered facts) and reads the rows the role voice_verify leaves with ``set_stats``; everything that
turns data into text is a pure function below (``build_row``, ``build_report``, ``render_*``) so
tests can call it directly.
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: fleet_report
type: notification
short_description: Writes a fleet report (Markdown, HTML with an RTF plot, JSON) after each playbook run.
description:
  - After a run that reached at least one host other than the controller, writes C(fleet-report.md),
    C(fleet-report.html) and C(fleet-report.json) with one row per host of the run's plays, atomically.
  - A row holds the host's status (ok, failed, rolled back, unreachable, not reached), OS, arch, Python, runtime
    flavour, model, scorer age, the transcripts, word error rate and real-time factor of each verified
    path (from the role voice_verify's C(set_stats) key C(fleet_report)) and the tasks that changed.
  - The HTML page is self-contained and embeds a plot of the real-time factor per host as an SVG image.
  - A problem while writing the report is shown as a warning; it never fails the playbook.
requirements:
  - Enable it with C(callbacks_enabled = fleet_report) and C(callback_plugins = ./plugins/callback) in a
    checkout, or C(callbacks_enabled = pivoice.voice_appliance.fleet_report) with the installed collection.
options:
  report_dir:
    description:
      - Directory the three report files are written to (created when missing).
      - Default is C(fleet-report) in the project root, the nearest directory at or above the
        playbook's directory that holds an C(ansible.cfg) (else the playbook's directory); for a
        playbook of the installed collection (C(pivoice.voice_appliance.site)) the current directory.
    type: path
    env:
      - name: PI_VOICE_FLEET_REPORT_DIR
    ini:
      - section: callback_fleet_report
        key: report_dir
"""

REPORT_FILES = ("fleet-report.md", "fleet-report.html", "fleet-report.json")
STATUSES = ("ok", "failed", "rolled back", "unreachable", "not reached")
CONTROLLER_NAMES = frozenset(("localhost", "127.0.0.1", "::1"))
FACT_ACTIONS = frozenset(("setup", "gather_facts"))
MISSING = "\u2014"  # shown for a value the run did not learn

Row = Dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

def to_number(value: Any) -> Optional[float]:
    """A finite float from a number or numeric string; None for anything else (missing, '', 'n/a')."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plain(value: Any) -> Any:
    """The value as plain JSON types (Ansible may hand over its own str/dict/list subclasses)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return str(value)


def format_age(seconds: Optional[float]) -> str:
    """A duration as people read it: '45 s', '12 min', '3 h 5 min', '2 d 4 h'; a negative one is
    a clock ahead of the controller's."""
    if seconds is None:
        return MISSING
    if seconds < 0:
        return "{} ahead (clock skew)".format(format_age(-seconds))
    whole = int(seconds)
    if whole < 60:
        return "{} s".format(whole)
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return "{} min".format(minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return "{} h {} min".format(hours, minutes)
    days, hours = divmod(hours, 24)
    return "{} d {} h".format(days, hours)


def format_number(value: Optional[float]) -> str:
    return MISSING if value is None else "{:.2f}".format(value)


def short_sha(sha: Optional[str]) -> str:
    return (sha or "")[:12]


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------

def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def facts_summary(facts: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """OS, arch and Python from gathered facts (keys with or without the 'ansible_' prefix)."""
    def fact(name: str) -> Any:
        return facts.get(name, facts.get("ansible_" + name))

    distribution = _text(fact("distribution"))
    os_name = None
    if distribution:
        os_name = distribution
        if _text(fact("distribution_version")):
            os_name += " " + str(fact("distribution_version"))
        if _text(fact("distribution_release")):
            os_name += " ({})".format(fact("distribution_release"))
    python = _text(fact("python_version"))
    version = (fact("python") or {}).get("version") if isinstance(fact("python"), Mapping) else None
    if python is None and isinstance(version, Mapping) and "major" in version:
        python = ".".join(str(version.get(part, "")) for part in ("major", "minor", "micro")).rstrip(".")
    return {"os": os_name, "arch": _text(fact("machine")) or _text(fact("architecture")), "python": python}


def _checks(verify: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The verified paths of a voice_verify row; an older row without 'checks' is one path."""
    raw = verify.get("checks")
    if not isinstance(raw, list):
        if not any(key in verify for key in ("transcript", "wer", "rtf")):
            return []
        raw = [dict(verify, path=verify.get("path") or "cli")]
    checks = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        checks.append({
            "path": _text(item.get("path")) or "?",
            "transcript": None if item.get("transcript") is None else str(item.get("transcript")),
            "expected": _text(item.get("expected")) or _text(verify.get("expected")),
            "wer": to_number(item.get("wer")),
            "rtf": to_number(item.get("rtf")),
            "inference_s": to_number(item.get("inference_s")),
            "audio_s": to_number(item.get("audio_s")),
            "error": _text(item.get("error")),
        })
    return checks


def _worst(values: Iterable[Optional[float]]) -> Optional[float]:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def build_row(host: str, verify: Optional[Mapping[str, Any]], log: Mapping[str, Any],
              counts: Mapping[str, int], now: float) -> Row:
    """One host's row.

    verify: the host's ``fleet_report`` stats row from voice_verify (None when it never got there).
    log: what the callback saw: ``facts`` (gathered), ``changed`` (task names), ``failures``
    (``{task, msg}`` in order, ignored errors left out), ``unreachable`` (message or None),
    ``stopped`` (the task after which the play gave up on the host's whole batch, or None).
    counts: the host's play-recap numbers: ``processed`` (0/1), ``failures``, ``unreachable``, ``rescued``.
    """
    verify = verify or {}
    facts = facts_summary(log.get("facts") or {})
    failures = [dict(item) for item in log.get("failures") or []]
    # The recap counts the failures that stuck; they are the last ones (a failed host runs on only in
    # always sections); the ones before were rescued.
    stuck = min(int(counts.get("failures") or 0), len(failures))
    rescued, real = failures[:len(failures) - stuck], failures[len(failures) - stuck:]
    status = "ok"
    reason = None
    failed_task = None
    if counts.get("unreachable") or log.get("unreachable"):
        status = "unreachable"
        reason = _text(log.get("unreachable")) or "the host could not be reached"
    elif counts.get("failures"):
        status = "failed"
        if real:
            failed_task, reason = real[0].get("task"), _text(real[0].get("msg"))
        reason = reason or "a task failed"
        if verify.get("status") == "rolled back":
            # playbooks/rollout.yml's rescue: the change failed, the Pi is back on its working state
            # (verified again) and was then failed on purpose.
            status = "rolled back"
    elif verify.get("status") == "failed":
        status = "failed"
        reason = _text(verify.get("reason")) or "voice_verify reported a failure"
    elif not counts.get("processed"):
        status = "not reached"
        reason = "the run ended before this host's turn"
    notes = ["{} in '{}': {}".format("rescued failure" if counts.get("rescued") else "failure", item.get("task"),
                                     _text(item.get("msg")) or "") for item in rescued]
    notes += ["then also failed in '{}': {}".format(item.get("task"), _text(item.get("msg")) or "") for item in real[1:]]
    if status == "ok" and log.get("stopped"):
        notes.append("the play stopped for this host after task '{}': too many hosts of its batch failed "
                     "(max_fail_percentage or any_errors_fatal)".format(log["stopped"]))
    if _text(verify.get("resumed")):
        notes.append("resumed a rollout interrupted on this Pi (its state of {} was kept on the Pi and was the state to "
                     "come back to)".format(_text(verify.get("resumed"))))
    if verify.get("status") == "skipped":
        notes.append("voice_verify checked no path: {}".format(_text(verify.get("reason")) or "no reason given"))
    if status == "failed" and failed_task and _text(verify.get("reason")) and verify.get("status") == "failed":
        notes.append("voice_verify: {}".format(_text(verify.get("reason"))))

    checks = _checks(verify)
    mtime = to_number(verify.get("scorer_mtime"))
    changed = [str(name) for name in log.get("changed") or []]
    return {
        "host": host,
        "status": status,
        "reason": reason,
        "failed_task": failed_task,
        "notes": notes,
        "verified": bool(verify),
        "os": _text(verify.get("os")) or facts["os"],
        "arch": _text(verify.get("arch")) or facts["arch"],
        "debian_arch": _text(verify.get("debian_arch")),
        "python": _text(verify.get("python")) or facts["python"],
        "flavour": _text(verify.get("flavour")),
        "runtime": _text(verify.get("runtime")),
        "model_id": _text(verify.get("model_id")),
        "model_sha256": _text(verify.get("model_sha256")),
        "scorer": _text(verify.get("scorer")),
        "scorer_sha256": _text(verify.get("scorer_sha256")),
        "scorer_mtime": mtime,
        "scorer_age_s": None if mtime is None else round(now - mtime, 1),
        "checks": checks,
        "wer": _worst(check["wer"] for check in checks),
        "rtf": _worst(check["rtf"] for check in checks),
        "max_wer": to_number(verify.get("max_wer")),
        "max_rtf": to_number(verify.get("max_rtf")),
        "changed": len(changed),
        "changed_tasks": changed,
    }


def build_report(rows: Sequence[Row], playbook: str, now: float, check_mode: bool = False) -> Dict[str, Any]:
    """The whole report: summary on top, then the rows (as given)."""
    if any(row.get("verified") for row in rows):
        # A run that verifies Pis (site.yml, rollout.yml, verify.yml): a Pi that took part only in the
        # run's early plays (staging's preflight) was never provisioned and verified in it.
        rows = [dict(row, status="not reached", reason="not verified in this run: it ended (e.g. a rollout stopped) "
                     "before this host's batch") if row.get("status") == "ok" and not row.get("verified") else row
                for row in rows]
    rtfs = [row["rtf"] for row in rows if row.get("rtf") is not None]
    thresholds = sorted({row["max_rtf"] for row in rows if row.get("max_rtf") is not None})
    summary: Dict[str, Any] = {"hosts": len(rows)}
    for status in STATUSES:
        summary[status] = sum(1 for row in rows if row.get("status") == status)
    summary["rtf_median"] = statistics.median(rtfs) if rtfs else None
    summary["rtf_max"] = max(rtfs) if rtfs else None
    summary["rtf_threshold"] = thresholds[0] if len(thresholds) == 1 else None
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).astimezone()
    return {
        "playbook": playbook,
        "generated": stamp.isoformat(timespec="seconds"),
        "generated_epoch": now,
        "check_mode": check_mode,
        "summary": summary,
        "hosts": [dict(row) for row in rows],
    }


# ---------------------------------------------------------------------------------------------
# Cell texts shared by Markdown and HTML
# ---------------------------------------------------------------------------------------------

def _arch_text(row: Row) -> str:
    arch = row.get("arch") or MISSING
    return "{} ({})".format(arch, row["debian_arch"]) if row.get("debian_arch") else arch


def _model_text(row: Row) -> str:
    if not row.get("model_id") and not row.get("model_sha256"):
        return MISSING
    text = row.get("model_id") or MISSING
    return text + (" (sha {})".format(short_sha(row["model_sha256"])) if row.get("model_sha256") else "")


def _scorer_text(row: Row) -> str:
    return format_age(row.get("scorer_age_s"))


def _check_parts(row: Row, field: str) -> List[Tuple[str, str]]:
    """(path, text) per verified path for the transcript, WER or RTF column."""
    parts = []
    for check in row.get("checks") or []:
        if field == "transcript":
            if check.get("error"):
                text = "error: " + _shorten(check["error"], 160)
            elif check.get("transcript") is None:
                text = MISSING
            else:
                text = check["transcript"] or "(nothing heard)"
        else:
            text = MISSING if check.get("error") else format_number(check.get(field))
        parts.append((check.get("path") or "?", text))
    return parts


def _shorten(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _summary_line(report: Mapping[str, Any]) -> str:
    summary = report["summary"]
    counts = ", ".join("{} {}".format(summary[status], status) for status in STATUSES)
    line = "{} hosts: {}".format(summary["hosts"], counts)
    if summary.get("rtf_max") is not None:
        line += "; RTF median {}, max {}".format(format_number(summary["rtf_median"]), format_number(summary["rtf_max"]))
    if summary.get("rtf_threshold") is not None:
        line += " (threshold {})".format(format_number(summary["rtf_threshold"]))
    return line


def _problem_text(row: Row) -> str:
    if row["status"] == "failed" and row.get("failed_task"):
        return "failed in task '{}': {}".format(row["failed_task"], row.get("reason") or "")
    return "{}: {}".format(row["status"], row.get("reason") or "")


COLUMNS = ("host", "status", "OS", "arch", "Python", "runtime flavour", "model", "scorer age",
           "transcript", "WER", "RTF", "changed tasks")


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]",
                             "<": "&lt;", ">": "&gt;", "&": "&amp;", "#": "\\#", "\n": " ", "\r": " "})


def md_escape(text: Any) -> str:
    """Text safe inside a Markdown table cell: no markup, no raw HTML, one line."""
    return str(text).translate(_MD_SPECIAL)


def render_markdown(report: Mapping[str, Any]) -> str:
    rows = report["hosts"]
    lines = ["# Fleet report: {}".format(md_escape(report["playbook"])), ""]
    lines.append("Generated {}{}.  ".format(md_escape(report["generated"]), " in check mode" if report.get("check_mode") else ""))
    lines.append(md_escape(_summary_line(report)) + ".")
    lines.append("")
    lines.append("The plot of the real-time factor per host is in fleet-report.html.")
    lines.append("")
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join(" --- " for _ in COLUMNS) + "|")
    footnotes = []
    for row in rows:
        changed = str(row.get("changed") or 0)
        if row.get("changed_tasks"):
            footnotes.append(row)
            changed += " [^c{}]".format(len(footnotes))
        status = row["status"] + (" (see problems)" if row["status"] != "ok" or row.get("notes") else "")
        cells = [
            md_escape(row["host"]), md_escape(status), md_escape(row.get("os") or MISSING), md_escape(_arch_text(row)),
            md_escape(row.get("python") or MISSING), md_escape(row.get("flavour") or MISSING), md_escape(_model_text(row)),
            md_escape(_scorer_text(row)),
        ]
        for field in ("transcript", "wer", "rtf"):
            parts = _check_parts(row, field)
            cells.append(" · ".join("{}: {}".format(md_escape(path), md_escape(text)) for path, text in parts) or MISSING)
        cells.append(changed)
        lines.append("| " + " | ".join(cells) + " |")
    problems = [row for row in rows if row["status"] != "ok" or row.get("notes")]
    if problems:
        lines += ["", "## Problems", ""]
        for row in problems:
            if row["status"] != "ok":
                lines.append("- **{}**: {}".format(md_escape(row["host"]), md_escape(_problem_text(row))))
            for note in row.get("notes") or []:
                lines.append("- **{}**: {}".format(md_escape(row["host"]), md_escape(note)))
    if footnotes:
        lines += ["", "## Changed tasks", ""]
        for number, row in enumerate(footnotes, 1):
            names = "; ".join(md_escape(name) for name in row["changed_tasks"])
            lines.append("[^c{}]: {}: {}".format(number, md_escape(row["host"]), names))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# SVG plot of the real-time factor
# ---------------------------------------------------------------------------------------------

def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks over span."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def render_svg(rows: Sequence[Row]) -> str:
    """Bars of each host's real-time factor (its slowest path), a y axis with ticks, the RTF threshold
    (one line, or a mark per bar when hosts differ); failed and unreachable hosts in red with a cross,
    hosts without a measurement marked n/a."""
    right, top = 24, 34
    labels = [row["host"] if len(row["host"]) <= 32 else row["host"][:31] + "\u2026" for row in rows]
    bottom = 24 + 5 * max([len(label) for label in labels] + [4])
    slot = min(80.0, max(30.0, (416.0) / max(len(rows), 1)))
    # Host names are slanted to the left under their bars: room for the first one (about 4 px a character).
    left = int(max(64.0, 4 * len(labels[0]) - slot / 2 + 8)) if labels else 64
    width = int(left + right + slot * max(len(rows), 1))
    height = 300 + bottom
    plot_h = height - top - bottom
    values = [row["rtf"] for row in rows if row.get("rtf") is not None]
    thresholds = [row["max_rtf"] for row in rows if row.get("max_rtf") is not None]
    top_value = max(values + thresholds + [0.0])
    step = nice_step(top_value * 1.1) if top_value > 0 else 0.2
    y_max = step * max(1, math.ceil(top_value * 1.1 / step - 1e-9)) if top_value > 0 else 1.0

    def y(value: float) -> float:
        return top + plot_h - plot_h * value / y_max

    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">'.format(w=width, h=height),
        "<title>Real-time factor per host</title>",
        '<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>'.format(width, height),
        '<text x="{}" y="18" font-size="13" font-weight="bold">Real-time factor per host</text>'.format(left),
    ]
    count = int(round(y_max / step))
    for index in range(count + 1):
        tick = step * index
        parts.append('<line class="tick" x1="{l}" x2="{r}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dddddd"/>'
                     '<text x="{tx}" y="{ty:.1f}" text-anchor="end">{v}</text>'.format(
                         l=left - 4, r=width - right, y=y(tick), tx=left - 7, ty=y(tick) + 4, v=_tick_label(tick, step)))
    parts.append('<line class="axis" x1="{l}" x2="{l}" y1="{t}" y2="{b}" stroke="#333333"/>'
                 '<line class="axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}" stroke="#333333"/>'.format(
                     l=left, r=width - right, t=top, b=top + plot_h))
    parts.append('<text transform="translate(18 {:.1f}) rotate(-90)" text-anchor="middle">'
                 "RTF (inference s / audio s, slowest path)</text>".format(top + plot_h / 2))
    unique_threshold = sorted(set(thresholds))
    for index, row in enumerate(rows):
        x = left + slot * index + slot * 0.15
        bar_w = slot * 0.7
        centre = x + bar_w / 2
        failed = row.get("status") in ("failed", "unreachable")
        host = _esc(row["host"])
        if row.get("rtf") is not None:
            value = row["rtf"]
            detail = ", ".join("{} {}".format(path, text) for path, text in _check_parts(row, "rtf"))
            parts.append(
                '<rect class="bar{cls}" data-host="{host}" data-rtf="{v}" x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" '
                'height="{h:.2f}" fill="{fill}"><title>{host}: RTF {t} ({detail}), {status}</title></rect>'.format(
                    cls=" failed" if failed else "", host=host, v=value, x=x, y=y(value), w=bar_w,
                    h=plot_h * value / y_max, fill="#c0392b" if failed else "#2e86c1",
                    t=format_number(value), detail=_esc(detail), status=_esc(row.get("status", ""))))
        else:
            parts.append('<text class="nodata" x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#888888">n/a'
                         "<title>{}: no measurement, {}</title></text>".format(
                             centre, top + plot_h - 4, host, _esc(row.get("status", ""))))
        if failed:
            mark_y = (y(row["rtf"]) if row.get("rtf") is not None else top + plot_h - 16) - 4
            parts.append('<text class="failed-mark" data-host="{h}" x="{x:.1f}" y="{y:.1f}" text-anchor="middle" '
                         'fill="#c0392b" font-size="14" font-weight="bold">\u2717<title>{h}: {s}</title></text>'.format(
                             h=host, x=centre, y=mark_y, s=_esc(row.get("status", ""))))
        if len(unique_threshold) > 1 and row.get("max_rtf") is not None:
            parts.append('<line class="threshold" data-host="{h}" data-rtf="{v}" x1="{a:.2f}" x2="{b:.2f}" y1="{y:.2f}" '
                         'y2="{y:.2f}" stroke="#e67e22" stroke-width="2" stroke-dasharray="4 2"/>'.format(
                             h=host, v=row["max_rtf"], a=x - 3, b=x + bar_w + 3, y=y(row["max_rtf"])))
        colour = ' fill="#c0392b"' if failed else (' fill="#888888"' if row.get("status") == "not reached" else "")
        parts.append('<text x="{cx:.1f}" y="{ty}" transform="rotate(-50 {cx:.1f} {ty})" text-anchor="end"{c}>{label}</text>'.format(
            cx=centre + 4, ty=top + plot_h + 14, label=_esc(labels[index]), c=colour))
    if len(unique_threshold) == 1:
        threshold = unique_threshold[0]
        parts.append('<line class="threshold" data-rtf="{v}" x1="{l}" x2="{r}" y1="{y:.2f}" y2="{y:.2f}" stroke="#e67e22" '
                     'stroke-width="2" stroke-dasharray="6 3"/><text x="{r}" y="{ty:.2f}" text-anchor="end" fill="#e67e22">'
                     "max RTF {t}</text>".format(v=threshold, l=left, r=width - right, y=y(threshold), ty=y(threshold) - 4,
                                                 t=format_number(threshold)))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _tick_label(value: float, step: float) -> str:
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9:
        decimals += 1
    return "{:.{}f}".format(value, decimals)


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f0f0f0;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}
tr.failed td,tr.unreachable td{background:#fdecea}
tr.not-reached td{background:#f4f4f4;color:#666}
.status-ok{color:#1e7b34;font-weight:bold}
.status-failed,.status-unreachable{color:#c0392b;font-weight:bold}
.status-rolled-back{color:#b9770e;font-weight:bold}
.path{color:#666}
summary{cursor:pointer}
img{max-width:100%;margin:1em 0}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _html_checks(row: Row, field: str) -> str:
    parts = _check_parts(row, field)
    if not parts:
        return MISSING
    return "<br>".join('<span class="path">{}:</span> {}'.format(_esc(path), _esc(text)) for path, text in parts)


def render_html(report: Mapping[str, Any]) -> str:
    rows = report["hosts"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Fleet report: {}</title>".format(_esc(report["playbook"])),
        "<style>{}</style></head><body>".format(_CSS),
        "<h1>Fleet report: {}</h1>".format(_esc(report["playbook"])),
        '<p>Generated <time datetime="{t}">{t}</time>{c}.<br>{s}.</p>'.format(
            t=_esc(report["generated"]), c=" in check mode" if report.get("check_mode") else "",
            s=_esc(_summary_line(report))),
        '<img alt="Real-time factor per host" src="{}">'.format(svg_data_uri(render_svg(rows))),
        "<table><thead><tr>" + "".join("<th>{}</th>".format(_esc(name)) for name in COLUMNS) + "</tr></thead><tbody>",
    ]
    for row in rows:
        status = row["status"]
        details = ([_problem_text(row)] if status != "ok" else []) + list(row.get("notes") or [])
        status_cell = '<span class="status-{}">{}</span>'.format(status.replace(" ", "-"), _esc(status))
        if details:
            status_cell = "<details><summary>{}</summary>{}</details>".format(
                status_cell, "<br>".join(_esc(text) for text in details))
        flavour = _esc(row.get("flavour") or MISSING)
        if row.get("runtime"):
            flavour = '<span title="{}">{}</span>'.format(_esc(row["runtime"]), flavour)
        model = _esc(_model_text(row))
        if row.get("model_sha256"):
            model = '<span title="sha256 {}">{}</span>'.format(_esc(row["model_sha256"]), model)
        scorer = _esc(_scorer_text(row))
        if row.get("scorer"):
            scorer = '<span title="{}">{}</span>'.format(_esc("{} sha256 {}".format(row["scorer"], row.get("scorer_sha256") or "?")), scorer)
        changed = str(int(row.get("changed") or 0))
        if row.get("changed_tasks"):
            changed = "<details><summary>{}</summary><ul>{}</ul></details>".format(
                changed, "".join("<li>{}</li>".format(_esc(name)) for name in row["changed_tasks"]))
        cells = [
            "<th scope=\"row\">{}</th>".format(_esc(row["host"])),
            "<td>{}</td>".format(status_cell),
            "<td>{}</td>".format(_esc(row.get("os") or MISSING)),
            "<td>{}</td>".format(_esc(_arch_text(row))),
            "<td>{}</td>".format(_esc(row.get("python") or MISSING)),
            "<td>{}</td>".format(flavour),
            "<td>{}</td>".format(model),
            '<td class="num">{}</td>'.format(scorer),
            "<td>{}</td>".format(_html_checks(row, "transcript")),
            '<td class="num">{}</td>'.format(_html_checks(row, "wer")),
            '<td class="num">{}</td>'.format(_html_checks(row, "rtf")),
            '<td class="num">{}</td>'.format(changed),
        ]
        out.append('<tr class="{}">{}</tr>'.format(status.replace(" ", "-"), "".join(cells)))
    out += ["</tbody></table>", "</body></html>"]
    return "\n".join(out) + "\n"


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(plain(report), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def project_root(playbook_path: str, cwd: Optional[str] = None) -> str:
    """The nearest directory at or above the playbook's that holds an ansible.cfg, else the playbook's.

    A playbook of an installed collection (pivoice.voice_appliance.site, below an ansible_collections
    directory) belongs to no project of the user's: the report goes where the user runs it (cwd).
    """
    start = os.path.dirname(os.path.abspath(playbook_path))
    if "ansible_collections" in start.split(os.sep):
        return os.path.abspath(cwd or os.getcwd())
    here = start
    while True:
        if os.path.isfile(os.path.join(here, "ansible.cfg")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return start
        here = parent


def write_atomically(path: str, text: str) -> None:
    """Write text to path via a temporary file in the same directory and a rename."""
    directory = os.path.dirname(path) or "."
    handle, temp = tempfile.mkstemp(prefix=".fleet-report-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def write_report(report: Mapping[str, Any], directory: str) -> List[str]:
    """Render and write the three files; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    renderers: Sequence[Tuple[str, Callable[[Mapping[str, Any]], str]]] = (
        (REPORT_FILES[0], render_markdown), (REPORT_FILES[1], render_html), (REPORT_FILES[2], render_json))
    written = []
    for name, render in renderers:
        path = os.path.join(directory, name)
        write_atomically(path, render(report))
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------
# The callback
# ---------------------------------------------------------------------------------------------

def _result_parts(result: Any) -> Tuple[str, Any, Mapping[str, Any]]:
    """(host name, task, result dict) of a task result on ansible-core before and after 2.19."""
    host = getattr(result, "host", None) or getattr(result, "_host")
    task = getattr(result, "task", None) or getattr(result, "_task")
    data = getattr(result, "result", None)
    if not isinstance(data, Mapping):
        data = getattr(result, "_result", {}) or {}
    return host.get_name(), task, data


def _failure_message(data: Mapping[str, Any]) -> str:
    """The message of a failed result; for a loop, the first failed item's."""
    message = _text(data.get("msg")) or ""
    for item in data.get("results") or []:
        if isinstance(item, Mapping) and item.get("failed") and _text(item.get("msg")):
            return "{} (item {}): {}".format(message or "an item failed", item.get("_ansible_item_label", item.get("item")),
                                             _text(item.get("msg")))
    if not message:
        for key in ("stderr", "module_stderr", "stdout"):
            if _text(data.get(key)):
                return _shorten(str(data[key]), 500)
        if data.get("rc") is not None:
            return "rc {}".format(data["rc"])
    return message


class CallbackModule(CallbackBase):
    """Collects per-host outcomes and writes the fleet report when the playbook's stats arrive."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "fleet_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._hosts: List[str] = []
        self._logs: Dict[str, Dict[str, Any]] = {}
        self._changed_seen: Dict[str, set] = {}
        self._playbooks: List[str] = []
        self._batch: List[str] = []
        self._variable_manager: Any = None
        self._task_name = ""

    # -- collecting ----------------------------------------------------------------------------

    def _warn(self, what: str, error: BaseException) -> None:
        self._display.warning("fleet_report: {} ({}: {}); the playbook is not affected.".format(what, type(error).__name__, error))

    def _log(self, host: str) -> Dict[str, Any]:
        if host not in self._logs:
            self._logs[host] = {"facts": {}, "changed": [], "failures": [], "unreachable": None, "stopped": None}
            self._changed_seen[host] = set()
        if host not in self._hosts:
            self._hosts.append(host)
        return self._logs[host]

    def _add_play_hosts(self, play: Any, patterns: Any, batch: bool = False) -> None:
        if not patterns or "{{" in str(patterns):
            return
        self._variable_manager = play.get_variable_manager()
        inventory = getattr(self._variable_manager, "_inventory", None)
        if inventory is None:
            return
        for host in inventory.get_hosts(patterns, ignore_restrictions=True):
            self._log(host.get_name())
        if batch:
            self._batch = [host.get_name() for host in inventory.get_hosts(patterns)]

    def v2_playbook_on_start(self, playbook: Any) -> None:
        try:
            self._playbooks.append(os.path.abspath(playbook._file_name))
            for play in playbook.get_plays():
                self._add_play_hosts(play, play.hosts)
        except Exception as error:  # pylint: disable=broad-except
            self._warn("could not read the playbook's hosts", error)

    def v2_playbook_on_play_start(self, play: Any) -> None:
        # Sent once per serial batch, with the inventory restricted to the batch: ask past the restriction.
        try:
            self._add_play_hosts(play, play.hosts, batch=True)
        except Exception as error:  # pylint: disable=broad-except
            self._warn("could not list the play's hosts", error)

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task_name = task.get_name()

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task_name = task.get_name()

    def v2_playbook_on_no_hosts_remaining(self) -> None:
        # The strategy gave up on the batch (max_fail_percentage, any_errors_fatal or every host failed):
        # hosts of the batch that had not failed stop here too, and the recap does not count them.
        for host in self._batch:
            self._log(host)["stopped"] = self._task_name

    def v2_runner_on_ok(self, result: Any) -> None:
        try:
            host, task, data = _result_parts(result)
            log = self._log(host)
            action = str(getattr(task, "action", "") or "").split(".")[-1]
            if action in FACT_ACTIONS and isinstance(data.get("ansible_facts"), Mapping):
                log["facts"].update(plain(data["ansible_facts"]))
            if data.get("changed"):
                uuid = getattr(task, "_uuid", None) or id(task)
                if uuid not in self._changed_seen[host]:
                    self._changed_seen[host].add(uuid)
                    log["changed"].append(task.get_name())
        except Exception as error:  # pylint: disable=broad-except
            self._warn("could not record a task result", error)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if ignore_errors:
            return
        try:
            host, task, data = _result_parts(result)
            self._log(host)["failures"].append({"task": task.get_name(), "msg": _failure_message(data)})
        except Exception as error:  # pylint: disable=broad-except
            self._warn("could not record a failed task", error)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        try:
            host, task, data = _result_parts(result)
            self._log(host)["unreachable"] = "{} (task '{}')".format(_text(data.get("msg")) or "unreachable", task.get_name())
        except Exception as error:  # pylint: disable=broad-except
            self._warn("could not record an unreachable host", error)

    # -- reporting -----------------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats: Any) -> None:
        try:
            self._report(stats)
        except Exception as error:  # pylint: disable=broad-except
            self._warn("the fleet report was not written", error)

    def _cached_facts(self, host: str) -> Mapping[str, Any]:
        """The host's facts from the fact cache: with smart gathering a host with cached facts is not
        gathered again, so its run has no fact-gathering result to read them from."""
        try:
            facts = self._variable_manager._fact_cache.get(host)
        except Exception:  # pylint: disable=broad-except  # no cache, or not this host
            return {}
        return plain(facts) if isinstance(facts, Mapping) else {}

    def _report(self, stats: Any) -> None:
        now = time.time()
        custom = getattr(stats, "custom", {}) or {}
        rows = []
        touched = False
        for host in self._hosts:
            entry = custom.get(host) or {}
            verify = entry.get("fleet_report") if isinstance(entry, Mapping) else None
            verify = plain(verify) if isinstance(verify, Mapping) else None
            if host in CONTROLLER_NAMES and verify is None:
                continue
            counts = {
                "processed": 1 if host in getattr(stats, "processed", {}) else 0,
                "failures": int(stats.failures.get(host, 0)),
                "unreachable": int(stats.dark.get(host, 0)),
                "rescued": int(getattr(stats, "rescued", {}).get(host, 0)),
            }
            touched = touched or bool(counts["processed"])
            log = self._logs.get(host, {})
            if counts["processed"] and not counts["unreachable"] and not log.get("facts"):
                log = dict(log, facts=self._cached_facts(host))
            rows.append(build_row(host, verify, log, counts, now))
        if not touched:
            self._display.vvv("fleet_report: the run reached no host besides the controller; no report written.")
            return
        directory = self.get_option("report_dir")
        if not directory:
            directory = os.path.join(project_root(self._playbooks[0]), "fleet-report") if self._playbooks else "fleet-report"
        names = [os.path.relpath(path, project_root(path)) for path in self._playbooks]
        report = build_report(rows, ", ".join(names) or "?", now, bool(context.CLIARGS.get("check", False)))
        written = write_report(report, directory)
        self._display.display("Fleet report ({} hosts): {}".format(len(rows), written[1]), stderr=True)
