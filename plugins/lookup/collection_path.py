"""Lookup collection_path: where a file of this collection is, in a checkout or an installed collection."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, List, Optional

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: collection_path
short_description: The absolute path of a file or directory of the pivoice.voice_appliance collection
description:
  - Returns, for each relative path given, its absolute path below the root of this collection (where
    C(galaxy.yml) is), that is the repository's root in a checkout and the installed collection's directory
    otherwise.
  - Roles name the sources they copy or build (C(python/rhasspy-asr), C(artifacts.yml), the fixture recording)
    with it instead of climbing out of their own directory, so they work wherever the collection is.
  - The path need not exist (a drop-in directory may be absent). It must be relative and stay inside the
    collection.
options:
  _terms:
    description: Paths relative to the collection's root, with C(/) as separator.
    required: true
"""

EXAMPLES = r"""
- name: Show where the artifact table is.
  ansible.builtin.debug:
    msg: "{{ lookup('pivoice.voice_appliance.collection_path', 'artifacts.yml') }}"
"""

RETURN = r"""
_raw:
  description: One absolute path per term.
  type: list
  elements: path
"""

# plugins/lookup/ -> the collection root.
ROOT = Path(__file__).resolve().parents[2]


def collection_path(relative: Any, root: Optional[Path] = None) -> str:
    """The absolute path of ``relative`` below the collection root; refuses anything that could leave it."""
    base = ROOT if root is None else root
    if not isinstance(relative, str) or not relative.strip():
        raise AnsibleLookupError(
            "collection_path needs a path relative to the collection's root, e.g. 'artifacts.yml'; got {!r}".format(relative))
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts or "\\" in relative:
        raise AnsibleLookupError(
            "collection_path {!r}: give a path inside the collection, relative to its root and without '..' "
            "(e.g. 'python/rhasspy-asr'); for a file of your own, set the variable to its absolute path instead".format(relative))
    return str(base.joinpath(*parts.parts))


class LookupModule(LookupBase):
    def run(self, terms: List[Any], variables: Optional[dict] = None, **kwargs: Any) -> List[str]:
        return [collection_path(term) for term in terms]
