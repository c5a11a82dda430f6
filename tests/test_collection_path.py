"""Roles name the collection's own files with the lookup collection_path, never by climbing out of role_path.

The lookup resolves a path below the collection's root (where galaxy.yml is) in a checkout and in an
installed collection alike (tests/test_collection.py runs it from an installed tarball); anything that
could leave the collection is refused with a message that names the bad value and the fix.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, List, Tuple

import pytest
import yaml
from ansible.errors import AnsibleLookupError

REPO = Path(__file__).resolve().parent.parent
LOOKUP = "pivoice.voice_appliance.collection_path"
# Drop-ins a user may add; the rest must be in the repository (and so in the tarball).
OPTIONAL = {"files/artifacts", "built-artifacts.sha256"}

_spec = importlib.util.spec_from_file_location("pi_voice_collection_path", str(REPO / "plugins" / "lookup" / "collection_path.py"))
assert _spec is not None and _spec.loader is not None
plugin: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)


def collection_paths() -> List[Tuple[str, str]]:
    """(file, relative path) for every use of the lookup in the roles' YAML."""
    found = []
    for path in sorted((REPO / "roles").rglob("*.yml")):
        for relative in re.findall(r"lookup\('{}', '([^']+)'\)".format(re.escape(LOOKUP)), path.read_text(encoding="utf-8")):
            found.append((str(path.relative_to(REPO)), relative))
    return found


def test_the_root_is_the_collections() -> None:
    assert plugin.ROOT == REPO and (plugin.ROOT / "galaxy.yml").is_file()


def test_a_relative_path_resolves_below_the_root(tmp_path: Path) -> None:
    assert plugin.collection_path("python/rhasspy-asr") == str(REPO / "python" / "rhasspy-asr")
    assert plugin.collection_path("a/./b", root=tmp_path) == str(tmp_path / "a" / "b")
    assert plugin.collection_path("files/not-there-yet") == str(REPO / "files" / "not-there-yet")  # drop-ins may be absent


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "python/../../outside", "..", "", "   ", "a\\..\\b", None, 3, ["x"]])
def test_paths_that_could_leave_the_collection_are_refused(bad: Any) -> None:
    with pytest.raises(AnsibleLookupError) as refused:
        plugin.collection_path(bad)
    message = str(refused.value)
    assert repr(bad) in message and ("relative" in message), message


def test_the_lookup_returns_one_path_per_term() -> None:
    lookup = plugin.LookupModule()
    assert lookup.run(["artifacts.yml", "scripts"]) == [str(REPO / "artifacts.yml"), str(REPO / "scripts")]


def test_no_role_climbs_out_of_its_directory() -> None:
    climbing = [str(p.relative_to(REPO)) for p in (REPO / "roles").rglob("*")
                if p.is_file() and p.suffix in {".yml", ".j2", ".md"} and re.search(r"role_path\s*}}\s*/\s*\.\.", p.read_text(encoding="utf-8"))]
    assert climbing == []


def test_every_file_a_role_names_is_in_the_collection() -> None:
    uses = collection_paths()
    assert len(uses) >= 10, uses  # the sources, the table, the scripts, the recording
    missing = [(where, relative) for where, relative in uses if relative not in OPTIONAL and not (REPO / relative).exists()]
    assert missing == []
