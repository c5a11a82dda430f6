"""The German model from its authors' public Google Drive folder, against a local server that plays Drive.

harness/artifact_server.py plays the folder (--gdrive-folder: Drive's embedded folder view), the files
(/uc, with the large-file confirmation page for a big one) and a sign-in page (fault "signin"); the
listing code (roles/artifact_stage/module_utils/gdrive_folder.py) runs against it directly, and the
role's own fetch tasks run through ansible-playbook with the repository's real artifacts.yml.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Optional

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FOLDER = "1PFSIdmi4Ge8EB75cYh2nfYOXlCIgiMEL"  # the v0.7.4 folder of AASHISHAG/deepspeech-german
ALPHABET_ID = "1zIvpdJ0YOreg_HwVwoyt_6BEEusH5g4w"  # its alphabet.txt
VARIANTS = {"tflite": "output_graph.tflite", "pb": "output_graph.pb", "alphabet": "alphabet.txt",
            "scorer": "kenlm.scorer"}
BIG = 200_000  # files above this get Drive's "can't scan for viruses" page (the scorer here)


def _module() -> ModuleType:
    path = REPO / "roles" / "artifact_stage" / "module_utils" / "gdrive_folder.py"
    spec = importlib.util.spec_from_file_location("gdrive_folder", str(path))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The same staging play and port helper as the artifact_stage tests.
from test_artifact_stage import PLAYBOOK, _server  # noqa: E402

gdrive_folder = _module()


class Drive:
    """The local Drive: its root directory, URL and request log."""

    def __init__(self, root: Path, log: Path, port: int) -> None:
        self.root, self.log, self.url = root, log, "http://127.0.0.1:{}".format(port)

    def gets(self) -> List[str]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r["path"] for r in lines if r["method"] == "GET"]

    def set_faults(self, faults: Dict[str, str]) -> None:
        import urllib.request
        request = urllib.request.Request(self.url + "/_faults", data=json.dumps(faults).encode(), method="PUT")
        urllib.request.urlopen(request, timeout=5).read()


@contextlib.contextmanager
def _drive(root: Path, log: Path) -> Iterator[Drive]:
    with _server(root, log, "--gdrive-folder", FOLDER + "=german", "--gdrive", ALPHABET_ID + "=german/alphabet.txt",
                 "--gdrive-confirm-over", str(BIG)) as port:
        yield Drive(root, log, port)


def _populate(root: Path, missing: str = "") -> None:
    folder = root / "german"
    folder.mkdir(parents=True)
    sizes = {"output_graph.tflite": 60_000, "output_graph.pb": 80_000, "kenlm.scorer": 400_000}
    for name, size in sizes.items():
        if name != missing:
            (folder / name).write_bytes(os.urandom(size))
    if missing != "alphabet.txt":
        (folder / "alphabet.txt").write_text(" \na\nb\nä\n'\n", encoding="utf-8")
    (folder / "README & notes.txt").write_text("the model's readme\n")


@pytest.fixture
def drive(tmp_path: Path) -> Iterator[Drive]:
    _populate(tmp_path / "drive")
    with _drive(tmp_path / "drive", tmp_path / "requests.jsonl") as served:
        yield served


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the listing itself --------------------------------------------------------------------------

def test_the_folder_view_lists_each_file_with_its_id(drive: Drive) -> None:
    entries = gdrive_folder.list_folder(FOLDER, drive.url, 5)
    names = {e.name: e for e in entries}
    assert sorted(names) == sorted(list(VARIANTS.values()) + ["README & notes.txt"]), "HTML entities decoded"
    assert names["alphabet.txt"].file_id == ALPHABET_ID and not names["alphabet.txt"].is_folder
    assert all(len(e.file_id) >= 25 for e in entries)
    assert drive.gets() == ["/embeddedfolderview"]


def test_a_file_in_a_subfolder_is_found_and_the_listing_is_cached(drive: Drive, tmp_path: Path) -> None:
    sub = drive.root / "german" / "tflite"
    sub.mkdir()
    (sub / "output_graph_quant.tflite").write_bytes(b"TFL3")
    cache = tmp_path / "listing.json"
    with _drive(drive.root, tmp_path / "sub.jsonl") as again:  # the server learns the new subfolder at start
        found, requests = gdrive_folder.find_file(FOLDER, "output_graph_quant.tflite", again.url, 5, str(cache))
        assert requests == 2 and again.gets() == ["/embeddedfolderview", "/embeddedfolderview"]
        assert gdrive_folder.find_file(FOLDER, "output_graph_quant.tflite", again.url, 5, str(cache)) == (found, 0)
        assert gdrive_folder.find_file(FOLDER, "alphabet.txt", again.url, 5, str(cache)) == (ALPHABET_ID, 0)
        assert len(again.gets()) == 2, "a cached listing answers without a request"


def test_a_name_missing_from_the_cached_listing_lists_the_folder_again(drive: Drive, tmp_path: Path) -> None:
    cache = tmp_path / "listing.json"
    cache.write_text(json.dumps({"folders": {FOLDER: [{"name": "alphabet.txt", "id": ALPHABET_ID, "folder": False}]}}))
    found, requests = gdrive_folder.find_file(FOLDER, "kenlm.scorer", drive.url, 5, str(cache))
    assert requests == 1 and drive.gets() == ["/embeddedfolderview"]
    names = [e["name"] for e in json.loads(cache.read_text())["folders"][FOLDER]]
    assert "kenlm.scorer" in names, "the fresh listing replaced the cached one"


def test_a_folder_that_lacks_the_file_says_what_it_lists_and_the_fix(drive: Drive, tmp_path: Path) -> None:
    (drive.root / "german" / "output_graph.pb").unlink()
    with pytest.raises(gdrive_folder.FolderError) as caught:
        gdrive_folder.find_file(FOLDER, "output_graph.pb", drive.url, 5, str(tmp_path / "c.json"))
    message = str(caught.value)
    assert "folder {}".format(FOLDER) in message and "lists no file named 'output_graph.pb'" in message, message
    assert "alphabet.txt, kenlm.scorer, output_graph.tflite" in message, message
    assert "gdrive_id" in message and "artifact_stage_catalog_overrides" in message, message


def test_a_page_that_is_not_a_folder_listing_is_named(drive: Drive) -> None:
    drive.set_faults({"/embeddedfolderview": "signin"})
    with pytest.raises(gdrive_folder.FolderError) as caught:
        gdrive_folder.list_folder(FOLDER, drive.url, 5)
    message = str(caught.value)
    assert "is not a Google Drive folder listing" in message and "Sign in" in message, message
    assert "anyone with the link" in message and FOLDER in message, message


@pytest.mark.bad_input
def test_an_unknown_folder_and_a_bad_id_are_refused_clearly(drive: Drive) -> None:
    with pytest.raises(gdrive_folder.FolderError, match="HTTP 404 .*not shared with 'anyone with the link'"):
        gdrive_folder.list_folder("1NoSuchFolderXXXXXXXXXXXXXXXXXXXX", drive.url, 5)
    with pytest.raises(gdrive_folder.FolderError, match="'drive/folders' is not a Google Drive folder id"):
        gdrive_folder.list_folder("drive/folders", drive.url, 5)


def test_parse_listing_reads_drive_markup_and_refuses_other_html() -> None:
    page = ('<html><head><title>release_v0.7.4</title></head><body><div class="flip-view-list"><div class="flip-entries">'
            '<div class="flip-entry" id="entry-1lyOFCfrxiTwXotmeWs1hdm_Amg3J_y1T" tabindex="0" role="link">'
            '<div class="flip-entry-info"><a href="https://drive.google.com/file/d/1lyOFCfrxiTwXotmeWs1hdm_Amg3J_y1T/view?'
            'usp=drive_web" target="_blank"><div class="flip-entry-list-icon"><div class="drive-sprite-aux-icon"><img '
            'src="x.png"></div></div><div class="flip-entry-title">output_graph.tflite</div></a></div>'
            '<div class="flip-entry-last-modified"><div>Jun 30, 2020</div></div></div>'
            '<div class="flip-entry" id="entry-1D7UTfFb1m-HoC3h8PHALkygNOD4pnwJh"><div class="flip-entry-info">'
            '<a href="https://drive.google.com/drive/folders/1D7UTfFb1m-HoC3h8PHALkygNOD4pnwJh">'
            '<div class="flip-entry-title">old &amp; <b>unused</b></div></a></div></div></div></div></body></html>')
    entries = gdrive_folder.parse_listing(page, FOLDER, "u")
    assert [(e.name, e.file_id, e.is_folder) for e in entries] == [
        ("output_graph.tflite", "1lyOFCfrxiTwXotmeWs1hdm_Amg3J_y1T", False),
        ("old & unused", "1D7UTfFb1m-HoC3h8PHALkygNOD4pnwJh", True)]
    assert gdrive_folder.parse_listing('<div class="flip-entries"></div>', FOLDER, "u") == [], "an empty folder"
    with pytest.raises(gdrive_folder.FolderError, match="'Error 404 \\(Not Found\\)'"):
        gdrive_folder.parse_listing("<html><title>Error 404 (Not Found)</title><p>That's an error.</p></html>", FOLDER, "u")


# --- the role's fetch tasks with the real table --------------------------------------------------



class Controller:
    """A controller that stages german_model 0.7.4 from the repository's own artifacts.yml."""

    def __init__(self, tmp: Path, drive: Drive) -> None:
        self.tmp, self.drive, self.cache = tmp, drive, tmp / "cache"
        (tmp / "playbook.yml").write_text(PLAYBOOK)
        (tmp / "hosts.ini").write_text("[all]\n" + "".join(
            "{} ansible_connection=local ansible_python_interpreter={}\n".format(h, sys.executable)
            for h in ("pi-1", "pi-2")))
        (tmp / "ansible.cfg").write_text("[defaults]\n")

    def cached(self, name: str) -> Path:
        return self.cache / "german_model" / "0.7.4" / name

    def run(self, extra: Optional[Dict[str, Any]] = None, check: bool = False) -> Dict[str, Any]:
        # Nothing but the endpoint (a local Drive) and the test's cache differ from a user's first run.
        variables: Dict[str, Any] = {
            "artifact_stage_gdrive_base_url": self.drive.url,
            "artifact_stage_cache_dir": str(self.cache),
            "artifact_stage_local_dir": str(self.tmp / "dropped"),
            "artifact_stage_items": [{"name": "german_model", "version": "0.7.4", "variant": v} for v in VARIANTS],
            "artifact_stage_retries": 0, "artifact_stage_retry_delay": 0, "artifact_stage_timeout": 5,
        }
        variables.update(extra or {})
        (self.tmp / "vars.json").write_text(json.dumps(variables))
        env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_CONFIG=str(self.tmp / "ansible.cfg"))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.tmp / "hosts.ini"),
               str(self.tmp / "playbook.yml"), "-e", "@" + str(self.tmp / "vars.json")] + (["--check"] if check else [])
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=300)
        report = json.loads(proc.stdout)
        failures = [msg for play in report["plays"] for task in play["tasks"] for res in task["hosts"].values()
                    if res.get("failed")
                    for msg in [res.get("msg", "")] + [r.get("msg", "") for r in res.get("results", []) if r.get("failed")]]
        changed = sum(s["changed"] for s in report["stats"].values())
        return {"rc": proc.returncode, "changed": changed, "failures": failures,
                "message": " ".join(" ".join(failures).split())}


@pytest.fixture
def controller(tmp_path: Path, drive: Drive) -> Controller:
    return Controller(tmp_path, drive)


def test_a_first_run_fetches_the_real_table_s_german_model_from_the_folder(controller: Controller, drive: Drive) -> None:
    first = controller.run()
    assert first["rc"] == 0, first["failures"]
    gets = drive.gets()
    assert gets.count("/embeddedfolderview") == 1, "the folder is listed once for all four files"
    assert gets.count("/uc") == 4 and gets.count("/download") == 1, "only the big scorer needs the confirmation"
    for name in VARIANTS.values():
        assert _sha256(controller.cached(name)) == _sha256(drive.root / "german" / name), name
    recorded = yaml.safe_load((controller.cache / "trusted-sums.yml").read_text())
    assert recorded == {"german_model": {"0.7.4": {
        v: _sha256(drive.root / "german" / n) for v, n in VARIANTS.items()}}}, "sums recorded on first use"
    listing = json.loads((controller.cache / "gdrive-folders.json").read_text())
    assert {e["name"]: e["id"] for e in listing["folders"][FOLDER]}["alphabet.txt"] == ALPHABET_ID

    again = controller.run()
    assert again["rc"] == 0 and again["changed"] == 0, again
    assert len(drive.gets()) == len(gets), "a re-run asks Drive nothing"
    checked = controller.run(check=True)
    assert checked["rc"] == 0 and checked["changed"] == 0, checked

    # A file lost from the cache comes back by its cached id: no listing request.
    controller.cached("kenlm.scorer").unlink()
    restored = controller.run()
    assert restored["rc"] == 0, restored["failures"]
    assert drive.gets()[len(gets):] == ["/uc", "/download"]


@pytest.mark.fault
def test_a_file_that_changed_after_its_sum_was_recorded_is_refused(controller: Controller, drive: Drive) -> None:
    assert controller.run()["rc"] == 0
    recorded = _sha256(controller.cached("output_graph.tflite"))
    controller.cached("output_graph.tflite").unlink()
    (drive.root / "german" / "output_graph.tflite").write_bytes(os.urandom(60_000))  # a new file, same name and id
    changed = controller.run()
    assert changed["rc"] != 0
    message = changed["message"]
    assert "Could not stage german_model 0.7.4 tflite" in message, message
    assert "output_graph.tflite (folder {})".format(FOLDER) in message, message
    assert "did not match {}; it was {}".format(recorded, _sha256(drive.root / "german" / "output_graph.tflite")) \
        in message, message
    trusted = str(controller.cache / "trusted-sums.yml")
    assert "changed since its sum was recorded" in message and "delete its line from " + trusted in message, message
    assert not controller.cached("output_graph.tflite").exists(), "a refused file never reaches the cache"
    assert yaml.safe_load(Path(trusted).read_text())["german_model"]["0.7.4"]["tflite"] == recorded, "sum kept"


def test_a_user_s_pinned_sum_wins_over_trust_on_first_use(controller: Controller, drive: Drive) -> None:
    pins = {"german_model": {"0.7.4": {"alphabet": {"sha256": "0" * 64}}}}
    result = controller.run({"artifact_stage_catalog_overrides": pins})
    assert result["rc"] != 0, result
    actual = _sha256(drive.root / "german" / "alphabet.txt")
    assert "alphabet.txt (folder {}) did not match {}; it was {}".format(FOLDER, "0" * 64, actual) in result["message"]
    assert "pin its sum with artifact_stage_catalog_overrides" in result["message"], result["message"]
    assert not controller.cached("alphabet.txt").exists()


@pytest.mark.bad_input
def test_a_folder_that_lacks_a_file_fails_naming_folder_file_and_fix(tmp_path: Path) -> None:
    _populate(tmp_path / "drive", missing="output_graph.pb")
    with _drive(tmp_path / "drive", tmp_path / "requests.jsonl") as drive:
        result = Controller(tmp_path, drive).run()
    assert result["rc"] != 0
    message = result["message"]
    assert "Could not stage german_model 0.7.4 pb from {}/drive/folders/{}".format(drive.url, FOLDER) in message, message
    assert "lists no file named 'output_graph.pb'" in message and "kenlm.scorer" in message, message
    assert "artifact_stage_catalog_overrides" in message, message


@pytest.mark.bad_input
def test_a_listing_page_that_is_not_one_fails_clearly(controller: Controller, drive: Drive) -> None:
    drive.set_faults({"/embeddedfolderview": "signin"})
    result = controller.run()
    assert result["rc"] != 0
    message = result["message"]
    assert "is not a Google Drive folder listing" in message and "Sign in" in message, message
    assert "folder {} shared with 'anyone with the link'".format(FOLDER) in message, message
    assert not (controller.cache / "german_model" / "0.7.4" / "output_graph.tflite").exists()
    assert drive.gets().count("/uc") == 0


def test_a_cached_id_that_drive_no_longer_serves_lists_the_folder_again(controller: Controller, drive: Drive) -> None:
    # The authors replaced alphabet.txt: the cached listing still names the old id, which Drive answers with 404.
    controller.cache.mkdir(parents=True)
    stale = [{"name": "alphabet.txt", "id": "1OldAlphabetIdThatIsGone000000000", "folder": False}]
    (controller.cache / "gdrive-folders.json").write_text(json.dumps({"folders": {FOLDER: stale}}))
    result = controller.run({"artifact_stage_items": [{"name": "german_model", "version": "0.7.4", "variant": "alphabet"}]})
    assert result["rc"] == 0, result["failures"]
    assert drive.gets() == ["/uc", "/embeddedfolderview", "/uc"], "a 404 for the cached id, then the listing, then the file"
    assert _sha256(controller.cached("alphabet.txt")) == _sha256(drive.root / "german" / "alphabet.txt")
    listing = json.loads((controller.cache / "gdrive-folders.json").read_text())["folders"][FOLDER]
    assert {e["name"]: e["id"] for e in listing}["alphabet.txt"] == ALPHABET_ID
