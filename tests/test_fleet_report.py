"""The fleet report callback (plugins/callback/fleet_report.py).

The renderers are called directly with hand-built rows; then real ansible-playbook runs with the
callback enabled over hosts on this controller (connection local), one of them unreachable on a
closed loopback port, and the three files it writes are read back.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "plugins" / "callback"

pytest.importorskip("ansible", reason="the callback needs ansible on the controller (run from the controller venv)")
_spec = importlib.util.spec_from_file_location("fleet_report", str(PLUGIN_DIR / "fleet_report.py"))
assert _spec is not None and _spec.loader is not None
fr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fr)

NOW = 1_700_000_000.0
SVG_NS = "{http://www.w3.org/2000/svg}"


def verify_row(**changes: Any) -> Dict[str, Any]:
    """A row as the role voice_verify hands it to set_stats."""
    row = {
        "os": "Debian 12 (bookworm)", "arch": "armv7l", "debian_arch": "armhf", "python": "3.11.2",
        "flavour": "tflite", "runtime": "deepspeech==0.7.4+compat.tflite.armhf",
        "model_id": "fixture_model-1-ab12cd34ef56", "model_sha256": "0123456789abcdef" * 4,
        "scorer": "/var/lib/voice-appliance/generated.scorer", "scorer_sha256": "f" * 64,
        "scorer_mtime": NOW - 7380, "max_wer": 0.0, "max_rtf": 1.0, "status": "ok",
        "checks": [
            {"path": "cli", "transcript": "das ist ein test", "expected": "das ist ein test", "wer": 0.0, "rtf": 0.4,
             "inference_s": 0.8, "audio_s": 2.0},
            {"path": "mqtt", "transcript": "das ist ein test", "expected": "das ist ein test", "wer": 0.0, "rtf": 0.5,
             "inference_s": 1.0, "audio_s": 2.0},
            {"path": "wyoming", "transcript": "das ist ein tst", "expected": "das ist ein test", "wer": 0.25, "rtf": 0.3,
             "inference_s": 0.6, "audio_s": 2.0},
        ],
    }
    row.update(changes)
    return row


def row(host: str, verify: Optional[Dict[str, Any]] = None, log: Optional[Dict[str, Any]] = None,
        **counts: int) -> Dict[str, Any]:
    return fr.build_row(host, verify, log or {}, dict({"processed": 1}, **counts), NOW)


def rtf_row(host: str, rtf: Optional[float], status: str = "ok", max_rtf: Optional[float] = 1.0) -> Dict[str, Any]:
    checks = [] if rtf is None else [{"path": "cli", "transcript": "x", "wer": 0.0, "rtf": rtf}]
    built = row(host, verify_row(checks=checks, max_rtf=max_rtf, status=status))
    return built


def svg_of(html_text: str) -> ET.Element:
    found = re.findall(r'<img [^>]*src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html_text)
    assert len(found) == 1, "expected one embedded SVG image"
    return ET.fromstring(base64.b64decode(found[0]).decode("utf-8"))


def num(element: ET.Element, name: str) -> float:
    value = element.get(name)
    assert value is not None, "{} has no {}".format(element.tag, name)
    return float(value)


def bars(svg: ET.Element) -> List[ET.Element]:
    return [rect for rect in svg.iter(SVG_NS + "rect") if "bar" in (rect.get("class") or "").split()]


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [
    (None, "\u2014"), (0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h 0 min"),
    (7380, "2 h 3 min"), (86399, "23 h 59 min"), (2 * 86400 + 4 * 3600 + 5, "2 d 4 h"), (-125, "2 min ahead (clock skew)"),
])
def test_format_age(seconds: Optional[float], text: str) -> None:
    assert fr.format_age(seconds) == text


def test_row_from_voice_verify() -> None:
    built = row("pi-1", verify_row(), {"changed": ["Copy the model.", "Restart Rhasspy."]})
    assert built["status"] == "ok" and built["reason"] is None and built["notes"] == []
    assert built["rtf"] == 0.5 and built["wer"] == 0.25  # the slowest and the worst path count (wyoming misheard)
    assert built["scorer_age_s"] == 7380
    assert built["changed"] == 2
    markdown = fr.render_markdown(fr.build_report([built], "site.yml", NOW))
    line = next(text for text in markdown.splitlines() if text.startswith("| pi-1 |"))
    cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
    assert cells == ["pi-1", "ok", "Debian 12 (bookworm)", "armv7l (armhf)", "3.11.2", "tflite",
                     "fixture\\_model-1-ab12cd34ef56 (sha 0123456789ab)", "2 h 3 min",
                     "cli: das ist ein test · mqtt: das ist ein test · wyoming: das ist ein tst",
                     "cli: 0.00 · mqtt: 0.00 · wyoming: 0.25", "cli: 0.40 · mqtt: 0.50 · wyoming: 0.30",
                     "2 [^c1]"]
    assert "[^c1]: pi-1: Copy the model.; Restart Rhasspy." in markdown


@pytest.mark.parametrize("counts, log, verify, status, reason", [
    ({}, {}, None, "ok", None),
    ({"processed": 0}, {}, None, "not reached", "the run ended before this host's turn"),
    ({"unreachable": 1, "failures": 1}, {"unreachable": "ssh: connect refused"}, None, "unreachable", "ssh: connect refused"),
    ({"failures": 1}, {"failures": [{"task": "Gate.", "msg": "too slow"}]}, None, "failed", "too slow"),
    ({}, {}, {"status": "failed", "reason": "mqtt: RTF 1.7 > 1.0"}, "failed", "mqtt: RTF 1.7 > 1.0"),
])
def test_status(counts: Dict[str, int], log: Dict[str, Any], verify: Optional[Dict[str, Any]], status: str,
                reason: Optional[str]) -> None:
    built = fr.build_row("pi", verify, log, dict({"processed": 1}, **counts), NOW)
    assert (built["status"], built["reason"]) == (status, reason)


def test_rescued_failure_is_a_note() -> None:
    failures = [{"task": "Try the new model.", "msg": "WER 1.0"}, {"task": "Gate.", "msg": "still failing"}]
    rescued_only = row("pi", None, {"failures": failures[:1]}, rescued=1)
    assert rescued_only["status"] == "ok"
    assert rescued_only["notes"] == ["rescued failure in 'Try the new model.': WER 1.0"]
    then_failed = row("pi", None, {"failures": failures}, rescued=1, failures=1)
    assert (then_failed["status"], then_failed["failed_task"], then_failed["reason"]) == ("failed", "Gate.", "still failing")
    assert then_failed["notes"] == ["rescued failure in 'Try the new model.': WER 1.0"]
    # A failure, then one more in an always section: the first is the cause.
    with_always = row("pi", None, {"failures": failures}, failures=2)
    assert (with_always["failed_task"], with_always["reason"]) == ("Try the new model.", "WER 1.0")
    assert with_always["notes"] == ["then also failed in 'Gate.': still failing"]


def test_missing_fields_and_fact_fallback() -> None:
    facts = {"ansible_distribution": "Debian", "ansible_distribution_version": "11", "ansible_distribution_release": "bullseye",
             "ansible_machine": "aarch64", "ansible_python": {"version": {"major": 3, "minor": 9, "micro": 2}}}
    from_facts = row("pi-facts", None, {"facts": facts})
    assert (from_facts["os"], from_facts["arch"], from_facts["python"]) == ("Debian 11 (bullseye)", "aarch64", "3.9.2")
    bare = row("pi-bare", {"status": "ok", "checks": [{"path": "cli"}], "scorer_mtime": "n/a"})
    empty = row("pi-empty", None, None, processed=0)
    for built in (from_facts, bare, empty):
        assert built["model_id"] is None and built["rtf"] is None and built["scorer_age_s"] is None
    report = fr.build_report([from_facts, bare, empty], "playbooks/verify.yml", NOW)
    assert report["summary"]["rtf_median"] is None and report["summary"]["rtf_max"] is None
    markdown = fr.render_markdown(report)
    bare_line = next(text for text in markdown.splitlines() if text.startswith("| pi-bare |"))
    assert bare_line.count("\u2014") >= 8, bare_line  # OS, arch, ..., WER, RTF all shown as missing
    html_text = fr.render_html(report)
    assert "<th scope=\"row\">pi-empty</th>" in html_text
    assert bars(svg_of(html_text)) == []
    assert json.loads(fr.render_json(report))["hosts"][2]["status"] == "not reached"


def test_older_row_without_checks() -> None:
    built = row("pi", {"path": "cli", "transcript": "das ist", "wer": 0.5, "rtf": "0.3", "status": "ok"})
    assert built["checks"][0]["path"] == "cli" and built["wer"] == 0.5 and built["rtf"] == 0.3


def test_escaping() -> None:
    nasty = 'das <script>alert("x")</script> & |pipe| *star* `tick`'
    host = 'pi<&">-1'
    built = row(host, verify_row(checks=[{"path": "cli", "transcript": nasty, "wer": 1.0, "rtf": 0.2}], status="failed",
                                 reason='cli heard "<b>"'), {"changed": ["Copy <x> & \"y\"."]})
    report = fr.build_report([built], "play<book>.yml", NOW)
    html_text = fr.render_html(report)
    assert "<script>" not in html_text and "<b>" not in html_text and "<x>" not in html_text
    assert "das &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; |pipe|" in html_text
    assert "<th scope=\"row\">pi&lt;&amp;&quot;&gt;-1</th>" in html_text
    assert "<li>Copy &lt;x&gt; &amp; &quot;y&quot;.</li>" in html_text
    assert "<title>Fleet report: play&lt;book&gt;.yml</title>" in html_text
    assert not re.search(r"""(src|href)=["'](?!data:)""", html_text), "the page must not load external resources"
    svg = svg_of(html_text)  # parses, so the host name was escaped in the SVG too
    assert [bar.get("data-host") for bar in bars(svg)] == [host]
    markdown = fr.render_markdown(report)
    line = next(text for text in markdown.splitlines() if text.startswith("| pi"))
    assert len(re.findall(r"(?<!\\)\|", line)) == len(fr.COLUMNS) + 1, line
    assert "<" not in markdown and "&lt;script&gt;" in markdown and "\\|pipe\\|" in markdown


def test_svg_bars_threshold_and_failures() -> None:
    rows = [rtf_row("pi-a", 0.5), rtf_row("pi-b", 1.0), rtf_row("pi-c", 2.0, status="failed"), rtf_row("pi-d", None)]
    svg = ET.fromstring(fr.render_svg(rows))
    found = bars(svg)
    assert [bar.get("data-host") for bar in found] == ["pi-a", "pi-b", "pi-c"]
    heights = [num(bar, "height") for bar in found]
    assert heights[0] > 0
    assert heights[1] / heights[0] == pytest.approx(2.0, rel=1e-3)
    assert heights[2] / heights[0] == pytest.approx(4.0, rel=1e-3)
    bottoms = {round(num(bar, "y") + num(bar, "height"), 1) for bar in found}
    assert len(bottoms) == 1, "bars must stand on one baseline"
    assert [bar.get("class") for bar in found] == ["bar", "bar", "bar failed"]
    assert [mark.get("data-host") for mark in svg.iter(SVG_NS + "text") if mark.get("class") == "failed-mark"] == ["pi-c"]
    assert [mark.get("class") for mark in svg.iter(SVG_NS + "text")].count("nodata") == 1
    lines = [line for line in svg.iter(SVG_NS + "line") if line.get("class") == "threshold"]
    assert len(lines) == 1
    assert num(lines[0], "y1") == pytest.approx(num(found[1], "y"), abs=0.02)  # at the height of RTF 1.0
    ticks = [float(text.text or "") for text in svg.iter(SVG_NS + "text")
             if re.fullmatch(r"\d+(\.\d+)?", text.text or "")]
    assert ticks == sorted(ticks) and ticks[0] == 0 and ticks[-1] >= 2.0 and len(ticks) >= 3


def test_svg_thresholds_differ() -> None:
    rows = [rtf_row("pi-a", 0.5, max_rtf=1.0), rtf_row("pi-b", 0.7, max_rtf=0.8), rtf_row("pi-c", 0.2, max_rtf=None)]
    svg = ET.fromstring(fr.render_svg(rows))
    marks = [line for line in svg.iter(SVG_NS + "line") if line.get("class") == "threshold"]
    assert [(mark.get("data-host"), num(mark, "data-rtf")) for mark in marks] == [("pi-a", 1.0), ("pi-b", 0.8)]
    assert fr.build_report(rows, "x", NOW)["summary"]["rtf_threshold"] is None


def test_summary() -> None:
    rows = [rtf_row("a", 0.2), rtf_row("b", 0.6), rtf_row("c", 0.4, status="failed"), row("d", None, processed=0)]
    summary = fr.build_report(rows, "playbooks/rollout.yml", NOW)["summary"]
    assert summary == {"hosts": 4, "ok": 2, "failed": 1, "rolled back": 0, "unreachable": 0, "not reached": 1,
                       "rtf_median": 0.4, "rtf_max": 0.6, "rtf_threshold": 1.0}
    assert "4 hosts: 2 ok, 1 failed, 0 rolled back, 0 unreachable, 1 not reached; RTF median 0.40, max 0.60 (threshold 1.00)" in \
        fr.render_markdown(fr.build_report(rows, "playbooks/rollout.yml", NOW))


def test_a_pi_the_rollout_put_back_is_rolled_back_not_just_failed() -> None:
    """rollout.yml's rescue re-verifies the working state, marks the row 'rolled back', then fails the Pi."""
    verify = verify_row(checks=[{"path": "cli", "transcript": "das ist ein test", "wer": 0.0, "rtf": 0.3}],
                        status="rolled back", reason="'Retrain the scorer now.': the job failed")
    log = {"failures": [{"task": "Fail this Pi with what went wrong and what it runs now.",
                         "msg": "pi failed the rollout at 'Retrain the scorer now.'; it is back on model 1"}]}
    built = row("pi", verify, log, failures=1)
    assert built["status"] == "rolled back" and "back on model 1" in built["reason"], built
    report = fr.build_report([built], "playbooks/rollout.yml", NOW)
    assert report["summary"]["rolled back"] == 1 and report["summary"]["failed"] == 0
    assert 'class="status-rolled-back"' in fr.render_html(report)


def test_hosts_only_staged_in_a_verifying_run_are_not_reached() -> None:
    """rollout.yml: every Pi takes part in staging's preflight, but a stopped rollout never verifies the last batches."""
    verified = rtf_row("a", 0.2)
    staged_only = row("b", None, {"facts": {}})
    report = fr.build_report([verified, staged_only], "playbooks/rollout.yml", NOW)
    assert [host["status"] for host in report["hosts"]] == ["ok", "not reached"], report["hosts"]
    assert report["summary"]["not reached"] == 1
    # Without any verification in the run (appliance.yml alone) a processed host stays ok.
    assert fr.build_report([staged_only], "playbooks/appliance.yml", NOW)["hosts"][0]["status"] == "ok"


def test_write_report_replaces_files(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "fleet-report.md").write_text("old")
    report = fr.build_report([rtf_row("pi-a", 0.3)], "site.yml", NOW)
    written = fr.write_report(report, str(target))
    assert sorted(os.listdir(str(target))) == sorted(fr.REPORT_FILES)
    assert [Path(path).read_text(encoding="utf-8") for path in written] == \
        [fr.render_markdown(report), fr.render_html(report), fr.render_json(report)]


def test_project_root(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    (tmp_path / "playbooks").mkdir()
    assert fr.project_root(str(tmp_path / "playbooks" / "rollout.yml")) == str(tmp_path)
    assert fr.project_root(str(tmp_path / "site.yml")) == str(tmp_path)


def test_project_root_of_an_installed_collections_playbook_is_where_the_user_runs_it(tmp_path: Path) -> None:
    installed = tmp_path / "collections" / "ansible_collections" / "pivoice" / "voice_appliance"
    (installed / "playbooks").mkdir(parents=True)
    (installed / "ansible.cfg").write_text("[defaults]\n")  # even one shipped inside is not the user's project
    fleet = tmp_path / "fleet"
    assert fr.project_root(str(installed / "playbooks" / "site.yml"), cwd=str(fleet)) == str(fleet)


# --------------------------------------------------------------------------------------------
# End to end: ansible-playbook with the callback enabled
# --------------------------------------------------------------------------------------------

SCORER_AGE = 90061  # 1 d 1 h 1 min 1 s

# A rollout-shaped play: batches of 6 of which at most 30 % may fail. pi-early fails first (1 of 6),
# pi-fail at the gate (2 of 6): the play stops there and the seventh host is never reached.
PLAYBOOK = """
- name: Verify a small fleet.
  hosts: pis
  serial: 6
  max_fail_percentage: 30
  gather_facts: true
  gather_subset: ["!all", "min"]
  tasks:
    - name: Write this host's file.
      ansible.builtin.copy:
        content: "{{ inventory_hostname }}\\n"
        dest: "{{ work }}/{{ inventory_hostname }}.txt"
        mode: "0644"
      when: inventory_hostname in ['pi-a', 'pi-b']

    - name: Write three files in a loop.
      ansible.builtin.copy:
        content: "{{ item }}\\n"
        dest: "{{ work }}/{{ inventory_hostname }}-{{ item }}.txt"
        mode: "0644"
      loop: [1, 2, 3]
      when: inventory_hostname == 'pi-a'

    - name: Fail without consequence.
      ansible.builtin.fail:
        msg: ignored on purpose
      ignore_errors: true  # noqa: ignore-errors
      when: inventory_hostname == 'pi-a'

    - name: Try something that fails and is rescued.
      when: inventory_hostname == 'pi-resc'
      block:
        - name: Fail inside the block.
          ansible.builtin.fail:
            msg: first try failed
      rescue:
        - name: Recover.
          ansible.builtin.debug:
            msg: recovered

    - name: Break before verification.
      ansible.builtin.fail:
        msg: the runtime is missing
      when: inventory_hostname == 'pi-early'

    - name: Add the row voice_verify would add.
      ansible.builtin.set_stats:
        per_host: true
        data:
          fleet_report:
            os: Debian 12 (bookworm)
            arch: armv7l
            debian_arch: armhf
            python: 3.11.2
            flavour: tflite
            runtime: deepspeech==0.7.4+compat.tflite.armhf
            model_id: fixture_model-1-ab12cd34ef56
            model_sha256: "{{ '0123456789abcdef' * 4 }}"
            scorer: /var/lib/voice-appliance/generated.scorer
            scorer_sha256: "{{ 'e' * 64 }}"
            scorer_mtime: "{{ scorer_mtime | float }}"
            max_wer: 0.0
            max_rtf: 1.0
            status: "{{ 'failed' if rtf | float > 1.0 else 'ok' }}"
            reason: "{{ ('cli: RTF ' ~ rtf ~ ' > 1.0') if rtf | float > 1.0 else '' }}"
            checks:
              - {path: cli, transcript: "{{ heard }}", expected: das ist ein test, wer: 0.0, rtf: "{{ rtf | float }}"}
              - {path: mqtt, transcript: "{{ heard }}", expected: das ist ein test, wer: 0.0, rtf: "{{ rtf | float / 2 }}"}
              - {path: wyoming, transcript: "{{ heard }}", expected: das ist ein test, wer: 0.0, rtf: "{{ rtf | float / 4 }}"}

    - name: Gate on the real-time factor.
      ansible.builtin.assert:
        that: rtf | float <= 1.0
        fail_msg: "{{ inventory_hostname }} is too slow: RTF {{ rtf }} > 1.0 <&>"
"""

HOSTS = [  # name, extra inventory variables
    ("pi-a", "rtf=0.4"),
    ("pi-b", "rtf=0.8"),
    ("pi-fail", "rtf=1.6"),
    ("pi-early", "rtf=0.1"),
    ("pi-resc", "rtf=0.2"),
    ("pi-down", "ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=5'"),
    ("pi-late", "rtf=0.3"),
]


def _ansible_playbook() -> str:
    found = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.path.exists(found):
        pytest.fail("ansible-playbook not found: run the tests from the controller venv (make test)")
    return found


def _run(work: Path, playbook: str, inventory: str, config: str = "[defaults]\n", report_dir: Optional[Path] = None,
         extra: Optional[List[str]] = None) -> subprocess.CompletedProcess:
    (work / "playbook.yml").write_text(playbook)
    (work / "hosts.ini").write_text(inventory)
    (work / "ansible.cfg").write_text(config)
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(PLUGIN_DIR),
               ANSIBLE_CALLBACKS_ENABLED="fleet_report", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1")
    env.pop("PI_VOICE_FLEET_REPORT_DIR", None)
    if report_dir is not None:
        env["PI_VOICE_FLEET_REPORT_DIR"] = str(report_dir)
    return subprocess.run(
        [_ansible_playbook(), "-i", str(work / "hosts.ini"), str(work / "playbook.yml")] + (extra or []),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False,
    )


def _local(name: str, extra: str = "") -> str:
    return "{} ansible_connection=local ansible_python_interpreter={} {}\n".format(name, sys.executable, extra)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    work = tmp_path_factory.mktemp("fleet")
    report_dir = work / "report"
    inventory = "[pis]\n" + "".join(
        (name + " " + extra + "\n") if "ssh" in extra else _local(name, extra) for name, extra in HOSTS)
    inventory += "[pis:vars]\nwork={}\nscorer_mtime={}\nheard='das <ist> & \"ein\" test'\n".format(work, time.time() - SCORER_AGE)
    run = _run(work, PLAYBOOK, inventory, report_dir=report_dir)
    files = {name: report_dir / name for name in fr.REPORT_FILES}
    missing = [name for name, path in files.items() if not path.exists()]
    if missing:
        pytest.fail("no {} written:\n{}\n{}".format(missing, run.stdout[-3000:], run.stderr[-3000:]))
    report = json.loads(files["fleet-report.json"].read_text(encoding="utf-8"))
    return {
        "run": run, "report": report, "rows": {row["host"]: row for row in report["hosts"]},
        "markdown": files["fleet-report.md"].read_text(encoding="utf-8"),
        "html": files["fleet-report.html"].read_text(encoding="utf-8"), "dir": report_dir,
    }


def test_e2e_statuses(fleet: Dict[str, Any]) -> None:
    assert fleet["run"].returncode != 0, "the run had a failed host"
    assert "Fleet report (7 hosts)" in fleet["run"].stderr
    assert [row["host"] for row in fleet["report"]["hosts"]] == [name for name, _ in HOSTS]
    statuses = {host: row["status"] for host, row in fleet["rows"].items()}
    assert statuses == {"pi-a": "ok", "pi-b": "ok", "pi-fail": "failed", "pi-early": "failed", "pi-resc": "ok",
                        "pi-down": "unreachable", "pi-late": "not reached"}
    rows = fleet["rows"]
    assert rows["pi-fail"]["failed_task"] == "Gate on the real-time factor."
    assert rows["pi-fail"]["reason"] == "pi-fail is too slow: RTF 1.6 > 1.0 <&>"
    assert rows["pi-fail"]["notes"] == ["voice_verify: cli: RTF 1.6 > 1.0"]
    assert (rows["pi-early"]["failed_task"], rows["pi-early"]["reason"]) == ("Break before verification.", "the runtime is missing")
    stopped = ("the play stopped for this host after task 'Gate on the real-time factor.': too many hosts of its batch failed "
               "(max_fail_percentage or any_errors_fatal)")
    assert rows["pi-resc"]["notes"] == ["rescued failure in 'Fail inside the block.': first try failed", stopped]
    assert rows["pi-a"]["notes"] == [stopped] and rows["pi-a"]["reason"] is None, "an ignored error is no failure"
    assert "127.0.0.1" in rows["pi-down"]["reason"] and "port 1" in rows["pi-down"]["reason"]
    summary = fleet["report"]["summary"]
    assert (summary["ok"], summary["failed"], summary["unreachable"], summary["not reached"]) == (3, 2, 1, 1)
    assert summary["rtf_max"] == 1.6 and summary["rtf_median"] == pytest.approx(0.6)


def test_e2e_changed_tasks(fleet: Dict[str, Any]) -> None:
    changed = {host: row["changed_tasks"] for host, row in fleet["rows"].items()}
    assert changed == {"pi-a": ["Write this host's file.", "Write three files in a loop."], "pi-b": ["Write this host's file."],
                       "pi-fail": [], "pi-early": [], "pi-resc": [], "pi-down": [], "pi-late": []}
    assert "[^c1]: pi-a: Write this host's file.; Write three files in a loop." in fleet["markdown"]
    assert "<details><summary>2</summary><ul><li>Write this host&#x27;s file.</li><li>Write three files in a loop.</li></ul>" \
        in fleet["html"]


def test_e2e_rows(fleet: Dict[str, Any]) -> None:
    rows = fleet["rows"]
    pi_a = rows["pi-a"]
    assert [(check["path"], check["transcript"], check["rtf"]) for check in pi_a["checks"]] == \
        [("cli", 'das <ist> & "ein" test', 0.4), ("mqtt", 'das <ist> & "ein" test', 0.2),
         ("wyoming", 'das <ist> & "ein" test', 0.1)]
    assert SCORER_AGE <= pi_a["scorer_age_s"] < SCORER_AGE + 300
    line = next(text for text in fleet["markdown"].splitlines() if text.startswith("| pi-a |"))
    for cell in ("Debian 12 (bookworm)", "armv7l (armhf)", "3.11.2", "tflite", "fixture\\_model-1-ab12cd34ef56 (sha 0123456789ab)",
                 "1 d 1 h", "cli: das &lt;ist&gt; &amp; \"ein\" test · mqtt: das &lt;ist&gt; &amp; \"ein\" test"
                 " · wyoming: das &lt;ist&gt; &amp; \"ein\" test",
                 "cli: 0.40 · mqtt: 0.20 · wyoming: 0.10"):
        assert "| {} |".format(cell) in line, (cell, line)
    # pi-early never reached the verification: what it runs comes from the gathered facts.
    early = rows["pi-early"]
    assert not early["verified"] and early["model_id"] is None
    assert early["arch"] == platform.machine()
    assert early["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    os_release = Path("/etc/os-release")
    if os_release.exists():
        codename = re.search(r"^VERSION_CODENAME=\"?(\w+)", os_release.read_text(), re.M)
        if codename:
            assert early["os"].endswith("({})".format(codename.group(1))), early["os"]
    for host in ("pi-down", "pi-late"):
        assert rows[host]["os"] is None and rows[host]["checks"] == []
    assert "&lt;ist&gt; &amp; &quot;ein&quot;" in fleet["html"] and "<ist>" not in fleet["html"]


def test_e2e_plot(fleet: Dict[str, Any]) -> None:
    svg = svg_of(fleet["html"])
    found = bars(svg)
    # One bar per host that was measured, the slowest path's RTF.
    assert [(bar.get("data-host"), num(bar, "data-rtf")) for bar in found] == \
        [("pi-a", 0.4), ("pi-b", 0.8), ("pi-fail", 1.6), ("pi-resc", 0.2)]
    heights = {bar.get("data-host"): num(bar, "height") for bar in found}
    assert heights["pi-fail"] / heights["pi-a"] == pytest.approx(4.0, rel=1e-3)
    assert [bar.get("class") for bar in found] == ["bar", "bar", "bar failed", "bar"]
    marks = [text.get("data-host") for text in svg.iter(SVG_NS + "text") if text.get("class") == "failed-mark"]
    assert marks == ["pi-fail", "pi-early", "pi-down"]
    assert [line.get("data-rtf") for line in svg.iter(SVG_NS + "line") if line.get("class") == "threshold"] == ["1.0"]


def test_no_report_without_hosts_and_never_a_failure(tmp_path: Path) -> None:
    """Runs that reach no host write nothing; a report that cannot be written only warns."""
    localhost_only = """
- name: Only the controller.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say hello.
      ansible.builtin.debug:
        msg: hello
"""
    one_host = localhost_only.replace("hosts: localhost", "hosts: pis")
    nowhere = tmp_path / "nowhere"
    run = _run(tmp_path, localhost_only, "[pis]\n" + _local("pi-1"), report_dir=nowhere)
    assert run.returncode == 0, run.stdout + run.stderr
    run = _run(tmp_path, one_host, "[pis]\n" + _local("pi-1"), report_dir=nowhere, extra=["--syntax-check"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert not nowhere.exists(), "a run that touched no host wrote a report"

    # The default place: fleet-report/ in the project root (the directory of ansible.cfg above the playbook).
    run = _run(tmp_path, one_host, "[pis]\n" + _local("pi-1"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(os.listdir(str(tmp_path / "fleet-report"))) == sorted(fr.REPORT_FILES)

    # A report directory that cannot be created (its parent is a file), set in ansible.cfg.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = "[defaults]\n[callback_fleet_report]\nreport_dir = {}\n".format(blocker / "report")
    run = _run(tmp_path, one_host, "[pis]\n" + _local("pi-1"), config=config)
    assert run.returncode == 0, run.stdout + run.stderr
    warning = "".join(run.stderr.split())  # the warning is wrapped to the terminal's width
    assert "fleet_report:thefleetreportwasnotwritten" in warning and str(blocker) in warning, run.stderr


def test_facts_from_the_fact_cache(tmp_path: Path) -> None:
    """With smart gathering a host with cached facts is not gathered again: its OS, arch and Python
    then come from the fact cache."""
    playbook = """
- name: Fail before verification.
  hosts: pis
  gather_facts: true
  gather_subset: ["!all", "min"]
  tasks:
    - name: Break before verification.
      ansible.builtin.fail:
        msg: the runtime is missing
"""
    config = "[defaults]\ngathering = smart\nfact_caching = jsonfile\nfact_caching_connection = {}\n".format(tmp_path / "facts")
    inventory = "[pis]\n" + _local("pi-1")
    rows = []
    for attempt in range(2):
        run = _run(tmp_path, playbook, inventory, config=config, report_dir=tmp_path / "report")
        assert run.returncode != 0, run.stdout + run.stderr
        gathered = "TASK [Gathering Facts]" in run.stdout
        assert gathered == (attempt == 0), "expected facts gathered on the first run only:\n" + run.stdout
        rows.append(json.loads((tmp_path / "report" / "fleet-report.json").read_text(encoding="utf-8"))["hosts"][0])
    for built in rows:
        assert (built["status"], built["arch"]) == ("failed", platform.machine())
        assert built["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert rows[1]["os"] == rows[0]["os"] and rows[0]["os"]


def test_a_check_mode_preview_that_checked_nothing_is_ok_with_a_note_saying_why() -> None:
    why = "check mode: /opt/voice-appliance/verify/das_ist_ein_test.wav would be created or rewritten first"
    built = row("pi", verify_row(checks=[], status="skipped", reason=why))
    assert (built["status"], built["reason"]) == ("ok", None)
    assert built["notes"] == ["voice_verify checked no path: " + why]
