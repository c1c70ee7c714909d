"""Name a module's license offline, from its LICENSE/COPYING files, by a few exact key phrases."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Tuple, Union

from manifests.limits import DEFAULT_LIMITS

NOASSERTION = "NOASSERTION"
# LICENSE, LICENCE.md, COPYING, LICENSE-MIT, License.txt: the files a license lives in, at the
# module's root only (a vendored directory's LICENSE is someone else's).
_CANDIDATE = re.compile(r"\A(licen[cs]e|copying)([._-][a-z0-9._-]{1,32})?\Z", re.IGNORECASE)
_MAX_FILES = 8

# Each id: phrase sets, any one of which must be found whole (every phrase of the set) in the
# text after _normal(). Full texts and the short headers projects put in LICENSE instead.
_RULES: Tuple[Tuple[str, Tuple[Tuple[str, ...], ...]], ...] = (
    ("MIT", (("permission is hereby granted free of charge to any person obtaining a copy",
              "the above copyright notice and this permission notice shall be included in all "
              "copies or substantial portions of the software"),)),
    ("Apache-2.0", (("apache license version 2 0 january 2004",),
                    ("licensed under the apache license version 2 0",))),
    ("BSD-3-Clause", (("redistribution and use in source and binary forms with or without "
                       "modification are permitted provided that the following conditions are "
                       "met", "redistributions of source code must retain the above copyright "
                       "notice", "redistributions in binary form must reproduce the above "
                       "copyright notice", "endorse or promote products derived from this "
                       "software without specific prior written permission"),)),
    ("ISC", (("permission to use copy modify and or distribute this software for any purpose "
              "with or without fee is hereby granted",),
             ("permission to use copy modify and distribute this software for any purpose "
              "with or without fee is hereby granted",))),
    ("MPL-2.0", (("mozilla public license version 2 0",),
                 ("subject to the terms of the mozilla public license v 2 0",))),
)
# BSD-2-Clause is BSD-3-Clause's first three phrases without its third clause.
_BSD2 = _RULES[2][1][0][:3]
# Words that make a matched text something else: an exception, an advertising clause (BSD-4),
# another license named beside it. Such a file is reported as NOASSERTION, never guessed.
# MPL-2.0's own text names the GNU licenses (its "Secondary Licenses"): only the rest count there.
_OTHERWISE = re.compile(r"\b(exceptions?|advertising|commons clause|non ?commercial)\b")
_OTHER_LICENSE = re.compile(r"\b(gnu|gpl|lgpl|agpl)\b")


@dataclass(frozen=True)
class License:
    """An SPDX license id (or NOASSERTION) and the file(s) it was read from."""

    id: str = NOASSERTION
    files: Tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.id != NOASSERTION


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def identify(text: bytes) -> str:
    """The one SPDX id whose key phrases `text` holds, or NOASSERTION (none, or several)."""
    norm = _normal(text.decode("utf-8", "replace"))
    found = [spdx for spdx, alternatives in _RULES
             if any(all(p in norm for p in phrases) for phrases in alternatives)]
    if not found and all(p in norm for p in _BSD2):
        found = ["BSD-2-Clause"]
    if len(found) != 1 or _OTHERWISE.search(norm) or (
            found[0] != "MPL-2.0" and _OTHER_LICENSE.search(norm)):
        return NOASSERTION
    return found[0]


def is_candidate(name: str) -> bool:
    return bool(_CANDIDATE.match(name))


def detect(texts: Dict[str, bytes]) -> License:
    """The license of a tree whose root-level license files are `texts` (name -> bytes): every
    file must name the same id; two ids (dual licensing: AND or OR?) are NOASSERTION."""
    names = tuple(sorted(texts))
    if not names:
        return License()
    ids = {identify(texts[n]) for n in names}
    return License(ids.pop() if len(ids) == 1 else NOASSERTION, names)


def from_module_zip(path: Union[Path, BinaryIO], module: str, version: str) -> License:
    """The license of a module .zip (already verified against go.sum) from its root files."""
    head = f"{module}@{version}/"
    limit = DEFAULT_LIMITS.module_license_bytes
    texts: Dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            wanted: List[zipfile.ZipInfo] = []
            for info in zf.infolist():
                rel = info.filename[len(head):] if info.filename.startswith(head) else ""
                if rel and "/" not in rel and is_candidate(rel) and info.file_size <= limit:
                    wanted.append(info)
            for info in sorted(wanted, key=lambda i: i.filename)[:_MAX_FILES]:
                texts[info.filename[len(head):]] = zf.read(info)
    except (OSError, zipfile.BadZipFile):
        return License()
    return detect(texts)


def from_files(read: Dict[str, Optional[bytes]]) -> License:
    """`detect` over the candidate names of `read` (name -> bytes, None for unreadable)."""
    return detect({n: b for n, b in sorted(read.items())[:_MAX_FILES]
                   if b is not None and is_candidate(n)})
