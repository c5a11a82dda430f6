"""Library lookup, architecture checks, flavour detection and model-less calls on the real libraries."""
from __future__ import annotations

import os

import pytest

import dscompat_support as support
from deepspeech import _library
from deepspeech._errors import LibraryError


def test_flavour_and_elf_of_official_libraries(libraries, armhf_library):
    assert _library.inspect_library(libraries["tflite"])[1:] == ("tflite", (64, "x86_64"))
    assert _library.inspect_library(libraries["tensorflow"])[1:] == ("tensorflow", (64, "x86_64"))
    assert _library.inspect_library(armhf_library)[1:] == ("tflite", (32, "arm"))
    # the flavour rests on the library files themselves, not on their size
    assert os.path.getsize(libraries["tflite"]) < 4e6 < os.path.getsize(libraries["tensorflow"])


def test_lookup_env_and_embedded(monkeypatch, tmp_path, libraries):
    monkeypatch.setenv(_library.ENV_VAR, libraries["tflite"])
    assert _library.find_library() == libraries["tflite"]
    missing = str(tmp_path / "nowhere" / "libdeepspeech.so")
    monkeypatch.setenv(_library.ENV_VAR, missing)
    with pytest.raises(LibraryError) as caught:
        _library.find_library()
    assert missing in str(caught.value) and "DEEPSPEECH_LIBRARY" in str(caught.value)
    monkeypatch.delenv(_library.ENV_VAR)
    monkeypatch.setattr(_library, "default_library_path", lambda: missing)
    with pytest.raises(LibraryError) as caught:
        _library.find_library()
    assert "No libdeepspeech.so" in str(caught.value) and "build_wheel.py" in str(caught.value)
    embedded = str(tmp_path / "libdeepspeech.so")
    with open(embedded, "wb") as handle:
        handle.write(b"\x7fELF")
    monkeypatch.setattr(_library, "default_library_path", lambda: embedded)
    assert _library.find_library() == embedded


def test_not_an_elf_file(tmp_path):
    fake = str(tmp_path / "libdeepspeech.so")
    with open(fake, "w") as handle:
        handle.write("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(LibraryError, match="not an ELF shared library"):
        _library.open_library(fake)


@pytest.mark.bad_input
def test_armhf_library_refused_before_dlopen(armhf_library):
    with pytest.raises(LibraryError) as caught:
        _library.open_library(armhf_library)
    assert "32-bit ARM (armhf/armv7l) library" in str(caught.value)
    assert "64-bit x86 (amd64/x86_64) process" in str(caught.value)


def test_armhf_library_in_arm64_process_is_explained(armhf_library, monkeypatch):
    monkeypatch.setattr(_library, "process_elf_info", lambda: _library.ElfInfo(64, "aarch64"))
    with pytest.raises(LibraryError) as caught:
        _library.open_library(armhf_library)
    message = str(caught.value)
    assert "wrong ELF class: ELFCLASS32" in message and "64-bit ARM (arm64/aarch64) process" in message
    assert "arm64" in message and "armhf userland" in message


def test_real_wrong_elf_class_from_dlopen(armhf_library, monkeypatch):
    # Let the pre-check pass, so that the dynamic loader itself refuses the 32-bit library.
    monkeypatch.setattr(_library, "process_elf_info", lambda: _library.ElfInfo(32, "arm"))
    with pytest.raises(LibraryError) as caught:
        _library.open_library(armhf_library)
    message = str(caught.value)
    assert "wrong ELF class: ELFCLASS32" in message  # the loader's own words
    assert "64-bit ARM" not in message and "this Python is a 64-bit process" in message
    assert "arm64" in message


def test_version_flavour_and_error_messages(flavour, libraries):
    result = support.run_worker(libraries[flavour], "library").data
    assert result["version"] == "0.7.4" and result["version_type"] == "str"
    assert result["flavour"] == flavour and result["path"] == libraries[flavour]
    messages = result["messages"]
    assert len(messages) == 20
    # every constant names a code the library knows; an unknown code gets the fallback text
    assert all(not text.startswith("Unknown error") for text in messages.values()), messages
    assert result["unknown"].startswith("Unknown error")
    assert messages["ERR_OK"] == "No error."
    assert messages["ERR_NO_MODEL"] == "Missing model information."
    assert messages["ERR_INVALID_SCORER"] == "Invalid scorer file."
    assert messages["ERR_SCORER_NOT_ENABLED"] == "External scorer is not enabled."
    assert messages["ERR_SCORER_INVALID_TRIE"] == "Invalid magic in trie header."
    assert messages["ERR_FAIL_INIT_MMAP"] == "Failed to initialize memory mapped model."
    assert messages["ERR_FAIL_READ_PROTOBUF"] == "Error reading the proto buffer model file."


def test_model_errors_tflite_library(libraries, tmp_path):
    pb = str(tmp_path / "output_graph.pb")
    support.write_graphdef(pb)
    missing = str(tmp_path / "missing.tflite")
    checked = support.run_worker(libraries["tflite"], "create_model", paths=[pb, missing, "", None]).data["results"]
    mismatch, absent, empty, none = (r["error"] for r in checked)
    assert mismatch["type"] == "ModelFormatError" and mismatch["runtime"]
    assert "Model provided has model identifier 'inpu', should be 'TFL3'" in mismatch["message"]
    assert "error code 12288" in mismatch["message"] and "output_graph.tflite" in mismatch["message"]
    assert checked[0]["stderr"] == ""  # refused before the library was asked
    assert absent["type"] == "ModelNotFoundError" and absent["runtime"] and missing in absent["message"]
    # upstream's exact wording where the library itself decides
    assert empty["message"] == none["message"] == "CreateModel failed with 'Missing model information.' (0x1000)"
    assert empty["type"] == "DeepSpeechError" and empty["runtime"] and empty["code"] == 0x1000
    # the explanation is true: unchecked, the TFLite library fails exactly as described
    raw = support.run_worker(libraries["tflite"], "create_model", paths=[pb], raw=True).data["results"][0]
    assert raw["status"] == 0x3000 == 12288
    assert "Model provided has model identifier 'inpu', should be 'TFL3'" in raw["stderr"]


def test_model_errors_tensorflow_library(libraries, tmp_path):
    tfl = str(tmp_path / "output_graph.tflite")
    support.write_tflite_header(tfl)
    checked = support.run_worker(libraries["tensorflow"], "create_model", paths=[tfl]).data["results"][0]
    assert checked["error"]["type"] == "ModelFormatError" and checked["error"]["code"] == 0x3005
    assert "full TensorFlow build" in checked["error"]["message"]
    raw = support.run_worker(libraries["tensorflow"], "create_model", paths=[tfl], raw=True).data["results"][0]
    assert raw["status"] == 0x3005 and "parse" in raw["stderr"]


def test_path_arguments_as_upstream(tmp_path):
    from deepspeech import impl

    assert impl._encode_path(str(tmp_path / "m.tflite"), "model path") == os.fsencode(str(tmp_path / "m.tflite"))
    assert impl._encode_path(tmp_path / "m.tflite", "model path") == os.fsencode(str(tmp_path / "m.tflite"))
    assert impl._encode_path(None, "model path") is None  # NULL: the library answers 0x1000
    for bad in (b"/x.tflite", 5):  # upstream's SWIG wrapper raises TypeError for these too
        with pytest.raises(TypeError, match="model path must be a str"):
            impl._encode_path(bad, "model path")
