"""Toolchain bundle: size vs the upstream .tar.gz, build time, install time vs `tar -xzf`.

Run: .venv/bin/python benchmarks/toolchain_bench.py  (prints ratios against the baseline
measured in the same run; one run each, same machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from installer import install  # noqa: E402
from keys import allowed_signers  # noqa: E402
from tests.support import bundles, gobin, upstream  # noqa: E402


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def main() -> int:
    level = int(os.environ.get("RESCUE_BENCH_LEVEL", "12"))
    archive = gobin.godl_archive()
    with tempfile.TemporaryDirectory(prefix="rescue-bench-") as tmp, \
            upstream.serve(upstream.godl_routes({archive.name: archive})) as url:
        work = Path(tmp)
        signing = bundles.make_signing(work / "keys")
        spec = bundles.write_spec(work / "spec.toml", signing.key, url, level=level)
        result, build_s = timed(lambda: bundles.build_bundle(spec, work / "out", work / "cache"))
        # Second build: everything cached, nothing downloaded.
        _, rebuild_s = timed(lambda: bundles.build_bundle(spec, work / "out2", work / "cache"))

        untar = work / "untar"
        untar.mkdir()
        _, tar_s = timed(lambda: subprocess.run(["tar", "-xzf", str(archive), "-C", str(untar)],
                                                check=True))
        signers = allowed_signers.load(signing.signers)
        res, install_s = timed(lambda: install.install(
            result.path, work / "prefix", signers, str(signing.signers)))
        check_s = 0.0
        if res.checks:
            # The checklist is part of install; time it alone to show the unpack share.
            from installer import checklist
            from installer.prefix import Layout
            layout = Layout(work / "prefix")
            _, check_s = timed(lambda: checklist.run(
                layout.version_dir("go1.21.13.linux-amd64"), "go1.21.13", "linux", "amd64",
                layout))

    up = archive.stat().st_size
    print(f"zstd level                 {level}")
    print(f"upstream .tar.gz           {up / 1e6:8.1f} MB")
    print(f"bundle                     {result.size / 1e6:8.1f} MB   ratio {result.size / up:.2f}")
    print(f"build (download+pack)      {build_s:8.1f} s")
    print(f"rebuild (cached)           {rebuild_s:8.1f} s")
    print(f"tar -xzf (baseline)        {tar_s:8.1f} s")
    print(f"rescue install             {install_s:8.1f} s   ratio {install_s / tar_s:.2f}")
    print(f"  of which checklist       {check_s:8.1f} s")
    print(f"  install w/o checklist    {install_s - check_s:8.1f} s   ratio "
          f"{(install_s - check_s) / tar_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
