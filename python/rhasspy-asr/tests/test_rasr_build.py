"""build.py: sha256-checked sdists, exact patch application, the patched sources and wheels."""

from __future__ import annotations

import difflib
import random
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

import rasr_support as support

build = support.load_build()


@pytest.fixture(scope="module")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned sdists (fetched once into the cache), copied into one directory."""
    directory = tmp_path_factory.mktemp("sdists")
    artifacts = build.load_artifacts()
    for package in build.PACKAGES:
        shutil.copy(str(build.fetch(build.artifact_entry(package, artifacts))), str(directory))
    return directory


@pytest.fixture(scope="module")
def sources(sdists: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("sources")
    trees = build.build(None, sdist_dir=sdists, sources_only=out, log=lambda message: None)
    return {tree.name.rsplit("-", 1)[0]: tree for tree in trees}


def test_every_sdist_in_artifacts_yml_has_patches() -> None:
    artifacts = build.load_artifacts()
    for package in build.PACKAGES:
        entry = build.artifact_entry(package, artifacts)
        assert entry["filename"] == "%s-%s.tar.gz" % (package.name, package.version)
        # fetched by its package coordinates (pip download of the sdist), never by a URL
        assert entry["pip"] == {"package": package.name, "version": package.version, "sdist": True}
        assert "url" not in entry
        assert len(entry["sha256"]) == 64
        assert build.patches_for(package), package.name


def test_patched_requirements_and_versions(sources: Dict[str, Path]) -> None:
    def requirements(name: str) -> List[str]:
        return (sources[name] / "requirements.txt").read_text(encoding="utf-8").split("\n")

    asr = requirements("rhasspy-asr-deepspeech")
    assert "deepspeech==0.7.4" in asr and not any("0.9.3" in line for line in asr)
    assert "voice-appliance>=0.1" in asr and any(line.startswith("numpy") for line in asr)
    hermes = requirements("rhasspy-asr-deepspeech-hermes")
    assert "rhasspy-asr-deepspeech==0.4.1+voice1" in hermes
    assert "setuptools<81" in hermes and 'audioop-lts; python_version >= "3.13"' in hermes
    assert "networkx==2.4" not in requirements("rhasspy-nlu")
    for name, tree in sources.items():
        version = (tree / "VERSION").read_text(encoding="utf-8").strip()
        assert version.endswith("+" + build.LOCAL_LABEL), (name, version)
        assert not list(tree.glob("*.egg-info")), "stale egg-info left in %s" % tree


def test_patched_sources_drop_the_0_8_tools(sources: Dict[str, Path]) -> None:
    train = (sources["rhasspy-asr-deepspeech"] / "rhasspyasr_deepspeech" / "train.py").read_text(encoding="utf-8")
    assert "generate_scorer_package" not in train.split('"""', 2)[2]  # only named in the docstring
    assert "from voice_appliance import retrain" in train
    transcribe = (sources["rhasspy-asr-deepspeech"] / "rhasspyasr_deepspeech" / "transcribe.py").read_text(encoding="utf-8")
    assert transcribe.index("enableExternalScorer") < transcribe.index("setScorerAlphaBeta")


@pytest.mark.bad_input
def test_wrong_sdist_is_refused(sdists: Path, tmp_path: Path) -> None:
    package = build.PACKAGES[0]
    entry = build.artifact_entry(package)
    bad = tmp_path / entry["filename"]
    bad.write_bytes((sdists / entry["filename"]).read_bytes() + b"\0")
    with pytest.raises(build.BuildError, match="sha256 .* artifacts.yml says %s" % entry["sha256"]):
        build.fetch(entry, tmp_path)
    with pytest.raises(build.BuildError, match="is missing: put"):
        build.fetch(entry, tmp_path / "empty")


def test_patch_that_does_not_fit_names_hunk_and_file(sdists: Path, tmp_path: Path) -> None:
    package = [p for p in build.PACKAGES if p.name == "rhasspy-asr-deepspeech"][0]
    root = build.unpack(sdists / build.artifact_entry(package)["filename"], tmp_path, package)
    transcribe = root / "rhasspyasr_deepspeech" / "transcribe.py"
    transcribe.write_text(transcribe.read_text(encoding="utf-8").replace("self.model_path = model_path", "self.model_path = None"),
                          encoding="utf-8")
    patch = [p for p in build.patches_for(package) if "transcribe" in p.name][0]
    with pytest.raises(build.BuildError, match=r"hunk \d+ \(line \d+ of the patch\) does not apply to "
                                               r"rhasspyasr_deepspeech/transcribe.py"):
        build.apply_patch(patch, root)


@pytest.mark.bad_input
def test_tarball_with_a_path_outside_is_refused(tmp_path: Path) -> None:
    package = build.PACKAGES[0]
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x", encoding="utf-8")
    with tarfile.open(str(evil), "w:gz") as archive:
        archive.add(str(payload), arcname="%s-%s/../../escaped" % (package.name, package.version))
    with pytest.raises(build.BuildError, match="unexpected member"):
        build.unpack(evil, tmp_path / "out", package)


def _diff(old: List[str], new: List[str], name: str, context: int) -> str:
    lines = difflib.unified_diff(old, new, "a/" + name, "b/" + name, n=context)
    text = ""
    for line in lines:
        text += line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
    return text


@pytest.mark.parametrize("seed", range(12))
def test_applier_reproduces_random_edits(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    old = ["line %d %s\n" % (i, "x" * rng.randint(0, 5)) for i in range(rng.randint(0, 60))]
    new = list(old)
    for _ in range(rng.randint(1, 8)):
        where = rng.randint(0, len(new))
        action = rng.choice(["insert", "delete", "change"])
        if action == "insert" or not new:
            new[where:where] = ["new %d\n" % rng.randint(0, 999)] * rng.randint(1, 3)
        elif action == "delete":
            del new[min(where, len(new) - 1):min(where, len(new) - 1) + rng.randint(1, 3)]
        else:
            new[min(where, len(new) - 1)] = "changed %d\n" % rng.randint(0, 999)
    if seed % 3 == 0 and new:
        new[-1] = new[-1].rstrip("\n")  # no newline at the end of the new file
    if seed % 4 == 1 and old:
        old[-1] = old[-1].rstrip("\n")
    if new == old:
        new.append("tail\n")
    (tmp_path / "f.txt").write_text("".join(old), encoding="utf-8")
    patch = tmp_path / "x.patch"
    patch.write_text("a comment line\n\n" + _diff(old, new, "f.txt", rng.choice([0, 1, 3])), encoding="utf-8")
    assert build.apply_patch(patch, tmp_path) == ["f.txt"]
    assert (tmp_path / "f.txt").read_text(encoding="utf-8") == "".join(new)


def test_applier_creates_and_deletes_files(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").write_text("a\nb\n", encoding="utf-8")
    patch = tmp_path / "x.patch"
    patch.write_text("--- /dev/null\n+++ b/pkg/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n"
                     "--- a/gone.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n", encoding="utf-8")
    assert build.apply_patch(patch, tmp_path) == ["pkg/new.txt", "gone.txt"]
    assert (tmp_path / "pkg" / "new.txt").read_text(encoding="utf-8") == "hello\nworld\n"
    assert not (tmp_path / "gone.txt").exists()
    escape = tmp_path / "escape.patch"
    escape.write_text("--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n", encoding="utf-8")
    with pytest.raises(build.BuildError, match="leaves the source tree"):
        build.apply_patch(escape, tmp_path)


def test_built_wheels_carry_the_patched_metadata(asr_venv: support.Venv) -> None:
    wheels = {w.name.split("-")[0]: w for w in asr_venv.wheels.glob("rhasspy_*.whl")}
    assert sorted(wheels) == ["rhasspy_asr_deepspeech", "rhasspy_asr_deepspeech_hermes", "rhasspy_nlu"]
    for name, wheel in wheels.items():
        assert "+%s-py3-none-any.whl" % build.LOCAL_LABEL in wheel.name
    assert "deepspeech==0.7.4" in build.wheel_requirements(wheels["rhasspy_asr_deepspeech"])
    with zipfile.ZipFile(str(wheels["rhasspy_asr_deepspeech_hermes"])) as archive:
        entry_points = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        assert "rhasspy-asr-deepspeech-hermes = rhasspyasr_deepspeech_hermes.__main__:main" in \
            archive.read(entry_points[0]).decode()


def test_wheel_build_is_reproducible_and_offline(asr_venv: support.Venv, sdists: Path, tmp_path: Path) -> None:
    # --sdist-dir and pip --no-index: no network; SOURCE_DATE_EPOCH from the sdist: same bytes
    first, second = (build.build(tmp_path / d, sdist_dir=sdists, python=asr_venv.python,
                                 only=["rhasspy-nlu"], log=lambda message: None)[0] for d in ("a", "b"))
    assert first.name == "rhasspy_nlu-0.4.0+%s-py3-none-any.whl" % build.LOCAL_LABEL
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == (asr_venv.wheels / first.name).read_bytes()
