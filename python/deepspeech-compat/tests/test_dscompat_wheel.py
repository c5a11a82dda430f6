"""build_wheel.py: wheel contents, refusals, and a real pip install into a fresh venv."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from typing import Dict, List

import pytest

import dscompat_support as support

_spec = importlib.util.spec_from_file_location("dscompat_build_wheel", os.path.join(support.PROJECT, "build_wheel.py"))
assert _spec is not None and _spec.loader is not None
build_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_wheel)


@pytest.fixture(scope="module")
def tflite_wheel(official_wheels, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist"))
    entry = support.artifact(*support.FLAVOUR_WHEELS["tflite"])
    return build_wheel.build(out, wheel=official_wheels["tflite"], sha256=entry["sha256"])


def test_wheel_name_version_and_contents(tflite_wheel, libraries):
    assert os.path.basename(tflite_wheel.path) == "deepspeech-0.7.4+compat.tflite-py3-none-manylinux1_x86_64.whl"
    assert tflite_wheel.flavour == "tflite" and tflite_wheel.version == "0.7.4+compat.tflite"
    with zipfile.ZipFile(tflite_wheel.path) as archive:
        names = archive.namelist()
        dist = "deepspeech-0.7.4+compat.tflite.dist-info/"
        assert names[-1] == dist + "RECORD"
        wheel_meta = archive.read(dist + "WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel_meta and "Tag: py3-none-manylinux1_x86_64" in wheel_meta
        metadata = archive.read(dist + "METADATA").decode()
        assert "Name: deepspeech\nVersion: 0.7.4+compat.tflite\n" in metadata
        assert "Requires-Dist: numpy; extra == \"numpy\"" in metadata  # numpy stays optional
        assert archive.read(dist + "entry_points.txt") == b"[console_scripts]\ndeepspeech = deepspeech.client:main\n"
        library = archive.read("deepspeech/lib/libdeepspeech.so")
        with open(libraries["tflite"], "rb") as handle:
            assert library == handle.read()  # the official library, unchanged
        assert archive.getinfo("deepspeech/lib/libdeepspeech.so").external_attr >> 16 & 0o777 == 0o755
        packaged = {n for n in names if n.startswith("deepspeech/") and n.endswith(".py")}
        assert packaged == {"deepspeech/" + n for n in os.listdir(os.path.join(support.PROJECT, "deepspeech")) if n.endswith(".py")}
        rows = [line.split(",") for line in archive.read(dist + "RECORD").decode().splitlines()]
        assert {r[0] for r in rows} == set(names)
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == "sha256=" + expected and int(size) == len(data), name


def test_build_is_reproducible(tflite_wheel, official_wheels, tmp_path):
    again = build_wheel.build(str(tmp_path), wheel=official_wheels["tflite"])
    with open(again.path, "rb") as one, open(tflite_wheel.path, "rb") as two:
        assert one.read() == two.read()


def test_tensorflow_and_armhf_and_bare_library(official_wheels, libraries, armhf_library, tmp_path):
    tf = build_wheel.build(str(tmp_path), wheel=official_wheels["tensorflow"])
    assert os.path.basename(tf.path) == "deepspeech-0.7.4+compat.tensorflow-py3-none-manylinux1_x86_64.whl"
    arm = build_wheel.build(str(tmp_path), wheel=support.fetch_artifact(*support.ARMHF_WHEEL))
    assert os.path.basename(arm.path) == "deepspeech-0.7.4+compat.tflite-py3-none-linux_armv7l.whl"
    bare = build_wheel.build(str(tmp_path), library=armhf_library, variant="tflite.arm")
    assert os.path.basename(bare.path) == "deepspeech-0.7.4+compat.tflite.arm-py3-none-linux_armv7l.whl"
    assert bare.library_sha256 == arm.library_sha256


@pytest.mark.bad_input
def test_refusals(official_wheels, armhf_library, libraries, tmp_path):
    out = str(tmp_path)
    with pytest.raises(build_wheel.BuildError, match="sha256 .* expected 0000"):
        build_wheel.build(out, wheel=official_wheels["tflite"], sha256="0" * 64)
    with pytest.raises(build_wheel.BuildError, match="does not fit the library"):
        build_wheel.build(out, library=armhf_library, platform="linux_aarch64")
    with pytest.raises(build_wheel.BuildError, match="PEP 440"):
        build_wheel.build(out, library=libraries["tflite"], variant="Bad_Variant")
    renamed = str(tmp_path / "deepspeech-0.9.3-cp38-cp38-manylinux1_x86_64.whl")
    shutil.copy(official_wheels["tflite"], renamed)
    with pytest.raises(build_wheel.BuildError, match="version 0.9.3"):
        build_wheel.build(out, wheel=renamed)
    not_lib = str(tmp_path / "libdeepspeech.so")
    with open(not_lib, "wb") as handle:
        handle.write(b"\x7fELF" + b"\x02\x01\x01" + b"\x00" * 200)
    with pytest.raises(build_wheel.BuildError, match="not a libdeepspeech"):
        build_wheel.build(out, library=not_lib)
    with pytest.raises(build_wheel.BuildError, match="a sha256 .* is required"):
        build_wheel.build(out, wheel="http://127.0.0.1:9/x/deepspeech-0.7.4-cp38-cp38-manylinux1_x86_64.whl")
    assert build_wheel.main(["--library", str(tmp_path / "missing.so"), "--out", out]) == 1


def make_dependent_wheel(directory: str) -> None:
    """A tiny distribution requiring deepspeech==0.7.4, as Rhasspy's packages pin it."""
    dist = "needs_deepspeech-1.0.dist-info/"
    files = {
        "needs_deepspeech.py": b"import deepspeech\n",
        dist + "METADATA": b"Metadata-Version: 2.1\nName: needs-deepspeech\nVersion: 1.0\nRequires-Dist: deepspeech==0.7.4\n",
        dist + "WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join("{},sha256={},{}\n".format(
        n, base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode(), len(d)) for n, d in files.items())
    files[dist + "RECORD"] = (record + dist + "RECORD,,\n").encode()
    with zipfile.ZipFile(os.path.join(directory, "needs_deepspeech-1.0-py3-none-any.whl"), "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def pip_for(env_dir: str, env: Dict[str, str]) -> List[str]:
    """pip for a fresh venv: this interpreter's pip with --python (pip >= 22.3, fast), else the venv's own."""
    python = os.path.join(env_dir, "bin", "python")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    outer = [sys.executable, "-m", "pip", "--python", python]
    probe = subprocess.run(outer + ["--version"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if probe.returncode == 0:
        return outer
    venv.EnvBuilder(with_pip=True).create(env_dir)
    return [python, "-m", "pip"]


def test_pip_install_satisfies_pinned_requirement(tflite_wheel, tmp_path):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("DEEPSPEECH_LIBRARY", None)
    env.pop("PYTHONPATH", None)
    env_dir = str(tmp_path / "venv")
    pip = pip_for(env_dir, env)
    links = str(tmp_path / "links")
    os.mkdir(links)
    shutil.copy(tflite_wheel.path, links)
    make_dependent_wheel(links)
    install = subprocess.run(pip + ["install", "--no-index", "--find-links", links, "needs-deepspeech"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert install.returncode == 0, install.stdout
    assert "deepspeech-0.7.4+compat.tflite" in install.stdout
    check = subprocess.run(pip + ["check"], env=env, stdout=subprocess.PIPE, universal_newlines=True)
    assert check.returncode == 0, check.stdout
    version = subprocess.run([os.path.join(env_dir, "bin", "deepspeech"), "--version"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert version.returncode == 0, version.stderr
    assert version.stdout == "DeepSpeech  0.7.4\n"  # upstream prints 'DeepSpeech ', version()
    assert os.path.join(env_dir, "lib") in version.stderr and "(tflite, 64-bit x86_64)" in version.stderr


def test_artifacts_table_has_every_official_wheel(tmp_path):
    table = support.load_artifacts()
    expected = {
        "deepspeech_wheel": {"armhf-cp37": "deepspeech-0.7.4-cp37-cp37m-linux_armv7l.whl"},
        "deepspeech_tflite_wheel": {},
    }
    for py, abi in (("35", "cp35m"), ("36", "cp36m"), ("37", "cp37m"), ("38", "cp38")):
        expected["deepspeech_wheel"]["amd64-cp" + py] = "deepspeech-0.7.4-cp{}-{}-manylinux1_x86_64.whl".format(py, abi)
        expected["deepspeech_tflite_wheel"]["amd64-cp" + py] = "deepspeech_tflite-0.7.4-cp{}-{}-manylinux1_x86_64.whl".format(py, abi)
    for name, variants in expected.items():
        assert set(table[name]["0.7.4"]) == set(variants), name
        for variant, filename in variants.items():
            entry = table[name]["0.7.4"][variant]
            assert entry["filename"] == filename
            # fetched by package coordinates (pip download), never by a URL
            assert "url" not in entry, (name, variant)
            py, _, platform = filename[:-len(".whl")].split("-")[2:]
            assert entry["pip"] == {"package": name[:-len("_wheel")].replace("_", "-"), "version": "0.7.4",
                                    "platform": platform, "python_version": py[2] + "." + py[3:]}, (name, variant)
            assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
    # the table's reader also takes one-line flow mappings and quoted scalars
    sample = tmp_path / "artifacts.yml"
    sample.write_text('---\nartifacts:\n  # c\n  x:\n    "1.0":\n      any: {filename: a.bin, url: "", sha256: \'ab\'}\n'
                      '      arm64:\n        filename: b.bin  # note\n')
    assert support.load_artifacts(str(sample)) == {"x": {"1.0": {"any": {"filename": "a.bin", "url": "", "sha256": "ab"},
                                                                 "arm64": {"filename": "b.bin"}}}}
