#!/usr/bin/python
"""Install a rescue bundle into a prefix with the host's rescue.pyz, changed only when new."""

# Runs on the managed host's Python (3.6+ in the field): standard library and AnsibleModule
# only, nothing past 3.6 (no walrus, no quotes of the same kind nested in an f-string).

import errno
import hashlib
import json
import os
import platform
import re
import stat
import sys

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: toolchain
short_description: Install a signed rescue bundle and make its Go current, idempotently
description:
  - Checks the sha256 of C(rescue.pyz) and of the bundle on the host, asks the pyz what the
    prefix holds (C(list --json)), and runs C(install --json) only when the bundle's manifest
    is new to the prefix (C(use --json) when it is recorded but another toolchain is current).
  - A guard (C(guard_projects), C(guard_commands)) that fails makes the pyz switch back to the
    previous toolchain; the task then fails with C(rolled_back=true).
  - Check mode reports what would change and touches nothing; diff mode shows the current
    toolchain and its bundle before and after.
options:
  pyz: {description: rescue.pyz on the host, type: path, required: true}
  pyz_sha256: {description: its expected sha256 (the controller's copy), type: str}
  bundle: {description: the bundle on the host, type: path, required: true}
  bundle_sha256: {description: its expected sha256 (the controller's copy), type: str}
  bundle_info:
    description: C(inspect --json) of the bundle, run on the controller (signature checked)
    type: dict
    required: true
  prefix: {description: the prefix P, type: path, required: true}
  use: {description: version to make current (default the bundle's newest for the host), type: str}
  trust: {description: allowed_signers on the host (default the pyz's own store), type: path}
  guard_projects: {description: projects the new go must build, type: list, elements: path}
  guard_commands: {description: commands run in each project (sh -c), type: list, elements: str}
  guard_timeout: {description: seconds per guard command, type: float, default: 600}
  fail_patterns: {description: output lines that fail the guard, type: list, elements: str}
  lock_timeout: {description: seconds to wait for the prefix lock, type: float, default: 300}
  python: {description: the interpreter that runs the pyz (default this module's), type: str}
"""

EXAMPLES = r"""
- rescue.fleet.toolchain:
    pyz: /var/tmp/rescue/rescue.pyz
    bundle: /var/tmp/rescue/dc-emergency-stable-7.rescue.tar.zst
    bundle_info: "{{ inspected }}"
    prefix: /usr/local/go-emergency
    guard_projects: [/srv/app]
    guard_commands: [go test ./...]
"""

RETURN = r"""
action: {description: install, use or none, type: str, returned: always}
current: {description: the current toolchain id afterwards, type: str, returned: always}
rolled_back:
  description: a failed guard or checklist made the previous toolchain current again
  type: bool
  returned: failed
rescue: {description: the pyz's JSON document of the install or use, type: dict, returned: changed}
"""


_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "i386": "386", "i686": "386", "x86": "386"}
_NUM = r"(?:0|[1-9][0-9]{0,5})"
_VERSION = re.compile(r"\Ago1\.(" + _NUM + r")(?:\.(" + _NUM + r")|(rc|beta)([1-9][0-9]{0,3}))?\Z")
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")  # names, channels, toolchain ids
MAX_JSON = 64 << 20  # the pyz's largest answer (`list` of a big prefix) is far below this


def host_target():
    goos = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform,
                                                                         sys.platform)
    arch = platform.machine().lower()
    return f"{goos}-{_ARCH.get(arch, arch)}"


def info_problem(info):
    """What is wrong with the controller's `inspect --json` of the bundle, or None."""
    if not isinstance(info, dict) or info.get("ok") is not True:
        return "it is not a successful `inspect --json` document"
    if not isinstance(info.get("manifest_sha256"), str) or not _SHA256.match(
            info["manifest_sha256"]):
        return "manifest_sha256 is not sha256 hex"
    for key in ("name", "channel"):
        if not isinstance(info.get(key), str) or not _NAME.match(info[key]):
            return f"{key} is not a plain name"
    if not isinstance(info.get("sequence"), int) or isinstance(info["sequence"], bool):
        return "sequence is not a whole number"
    tcs = info.get("toolchains")
    if not isinstance(tcs, list) or not all(
            isinstance(t, dict) and all(isinstance(t.get(k), str) for k in
                                        ("id", "version", "os", "arch"))
            and _VERSION.match(t["version"]) and _NAME.match(t["id"]) for t in tcs):
        return "toolchains is not a list of {id, version, os, arch}"
    newest = info.get("current_by_target")
    if not isinstance(newest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and any(t["id"] == v for t in tcs)
            for k, v in newest.items()):
        return "current_by_target is not {target: id of one of its toolchains}"
    return None


def choose(info, use):
    """The toolchain install makes current here: `use`, else the one the pyz's `inspect`
    names for this host (the newest: the order of Go versions stays in the pyz)."""
    host = host_target()
    mine = [t for t in info["toolchains"] if "{}-{}".format(t["os"], t["arch"]) == host]
    if use:
        want = use if use.startswith("go") else "go" + use
        picked = [t for t in mine if want in (t["version"], t["id"])]
        return picked[0] if picked else None
    newest = info["current_by_target"].get(host)
    return next((t for t in mine if t["id"] == newest), None)


def sha256_of(path):
    """The file's sha256, never through a symbolic link, never waiting on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        digest = hashlib.sha256()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)
    finally:
        os.close(fd)


class Rescue:
    """The host's rescue.pyz, each command with --json, its one document parsed."""

    def __init__(self, module, python, pyz, prefix):
        self.module, self.python, self.pyz, self.prefix = module, python, pyz, prefix

    def run(self, args):
        argv = [self.python, "-I", self.pyz] + args + ["--prefix", self.prefix, "--json"]
        rc, out, err = self.module.run_command(argv, check_rc=False,
                                               environ_update={"LANG": "C.UTF-8"})
        doc = None
        if len(out) <= MAX_JSON:
            try:
                doc = json.loads(out)
            except ValueError:
                doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("exit_code"), int):
            self.module.fail_json(
                msg=f"running rescue.pyz {args[0]}: its output is not one JSON document "
                    f"(exit {rc}); is {self.pyz} a rescue.pyz this {self.python} can run? "
                    f"stderr: {err.strip()[-2000:]}")
        return doc

    def listing(self):
        """`list --json`, or an empty listing for a prefix nothing was installed into."""
        if not os.path.lexists(os.path.join(self.prefix, "versions")):
            return {"toolchains": [], "bundles": [], "goroot": None, "goproxy": None}
        doc = self.run(["list"])
        if doc["exit_code"] != 0:
            fail(self.module, f"listing {self.prefix}", doc)
        return doc


def fail(module, doing, doc, **extra):
    err = doc.get("error") or {}
    module.fail_json(msg=err.get("message") or "{}: exit {}".format(doing, doc["exit_code"]),
                     exit_code=doc["exit_code"], error=err, rescue=doc, **extra)


def current_of(listing):
    return next((t["id"] for t in listing.get("toolchains", []) if t.get("current")), None)


def facts(listing, info, prefix):
    cur = current_of(listing)
    record = next((b for b in reversed(listing.get("bundles", []))
                   if cur and cur in (b.get("toolchains") or [])), None)
    bundle = signer = None
    if record is not None:
        bundle = dict((k, record.get(k)) for k in ("name", "channel", "sequence",
                                                   "manifest_sha256"))
        signer = (info.get("signer") if record.get("manifest_sha256") ==
                  info["manifest_sha256"] else {"key_id": record.get("signer")})
    return {"rescue_prefix": prefix, "rescue_current": cur,
            "rescue_goroot": listing.get("goroot"), "rescue_goproxy": listing.get("goproxy"),
            "rescue_bundle_id": bundle, "rescue_signer": signer}


def said(current, bundle):
    if bundle is None:
        return "current: %s\nbundle: none\n" % (current or "none")
    return "current: {}\nbundle: {} {} #{} {}\n".format(
        current or "none", bundle["name"], bundle["channel"], bundle["sequence"],
        bundle["manifest_sha256"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pyz=dict(type="path", required=True), pyz_sha256=dict(type="str"),
            bundle=dict(type="path", required=True), bundle_sha256=dict(type="str"),
            bundle_info=dict(type="dict", required=True),
            prefix=dict(type="path", required=True), use=dict(type="str"),
            trust=dict(type="path"),
            guard_projects=dict(type="list", elements="path", default=[]),
            guard_commands=dict(type="list", elements="str", default=[]),
            guard_timeout=dict(type="float", default=600.0),
            fail_patterns=dict(type="list", elements="str", default=[]),
            lock_timeout=dict(type="float", default=300.0),
            python=dict(type="str")),
        supports_check_mode=True)
    p = module.params
    info, prefix = p["bundle_info"], p["prefix"]
    problem = info_problem(info)
    if problem:
        module.fail_json(msg=f"reading bundle_info: {problem}; pass the controller's `rescue.pyz "
                             "inspect BUNDLE --json` document")
    if not os.path.isabs(prefix):
        module.fail_json(msg=f"installing into {prefix}: the prefix must be an absolute path")

    missing = []
    for path, want in ((p["pyz"], p["pyz_sha256"]), (p["bundle"], p["bundle_sha256"])):
        if not os.path.lexists(path):
            missing.append(path)
            continue
        try:
            got = sha256_of(path)
        except OSError as exc:
            module.fail_json(msg=f"checking {path}: {exc.strerror or exc}; copy it again "
                                 "(a regular file, not a link)")
        if want and got != want.lower():
            module.fail_json(msg=f"checking {path}: sha256 mismatch: the controller's copy is "
                                 f"{want.lower()}, this one is {got}; copy it again",
                             expected=want.lower(), got=got)
    if missing and not module.check_mode:
        module.fail_json(msg=f"installing from {', '.join(missing)}: not on this host; copy "
                             "it first")

    wanted = choose(info, p["use"])
    if wanted is None:
        has = ", ".join(t["id"] for t in info["toolchains"]) or "none"
        module.fail_json(msg="choosing a toolchain of {} #{} for {}: the bundle has {}{}".format(
            info["name"], info["sequence"], host_target(), has,
            f"; no {p['use']} among them" if p["use"] else ""))
    new = dict((k, info[k]) for k in ("name", "channel", "sequence", "manifest_sha256"))
    rescue = Rescue(module, p["python"] or sys.executable, p["pyz"], prefix)
    if p["pyz"] in missing:
        if os.path.lexists(os.path.join(prefix, "versions")):
            module.exit_json(changed=True, action="unknown", current=None,
                             ansible_facts=facts({}, info, prefix),
                             msg=f"check mode: {p['pyz']} is not on this host yet, so what "
                                 f"{prefix} holds cannot be asked; the real run copies it and "
                                 "decides")
        before = {"toolchains": [], "bundles": []}
    else:
        before = rescue.listing()
    cur = current_of(before)
    installed = [t["id"] for t in before.get("toolchains", [])]
    recorded = any(b.get("manifest_sha256") == info["manifest_sha256"]
                   for b in before.get("bundles", []))
    if not recorded or wanted["id"] not in installed:
        action = "install"
    elif cur != wanted["id"]:
        action = "use"
    else:
        action = "none"
    was = facts(before, info, prefix)
    diff = {"before": said(cur, was["rescue_bundle_id"]), "after": said(wanted["id"], new)}
    if action == "none":
        module.exit_json(changed=False, action=action, current=cur, ansible_facts=was)
    if module.check_mode:
        module.exit_json(changed=True, action=action, current=cur, diff=diff, ansible_facts=was,
                         msg="check mode: would {} {}".format(action, wanted["id"]))

    guard = []
    for project in p["guard_projects"]:
        guard += ["--guard-project", project]
    for cmd in p["guard_commands"]:
        guard += ["--guard-cmd", cmd]
    for pattern in p["fail_patterns"]:
        guard += ["--fail-pattern", pattern]
    if guard:
        guard += ["--guard-timeout", str(p["guard_timeout"])]
    if action == "install":
        args = ["install", p["bundle"], "--use", wanted["version"]]
        args += ["--trust", p["trust"]] if p["trust"] else []
    else:
        args = ["use", wanted["id"]]
    doc = rescue.run(args + guard + ["--lock-timeout", str(p["lock_timeout"])])
    after = rescue.listing()
    now = facts(after, info, prefix)
    if doc["exit_code"] != 0:
        # Exit 4: the checklist or the guard failed and the pyz made the previous toolchain
        # current again (README "Guarded switches"); anything else changed nothing.
        fail(module, "{} {}".format(action, wanted["id"]), doc, action=action,
             current=current_of(after),
             rolled_back=doc["exit_code"] == 4 and current_of(after) == cur,
             guard=doc.get("guard"), facts=now, changed=current_of(after) != cur)
    diff["after"] = said(now["rescue_current"], now["rescue_bundle_id"])
    module.exit_json(changed=True, action=action, current=now["rescue_current"],
                     previous=cur, diff=diff, rescue=doc, ansible_facts=now)


if __name__ == "__main__":
    main()
