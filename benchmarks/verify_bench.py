"""`verify` of one real GOROOT (Go 1.21.13) vs `sha256sum -c` over the same files.

Run: .venv/bin/python benchmarks/verify_bench.py [--repeat R]

Both sides read the same installed tree with a warm page cache, in alternating runs on the
same disk, and the medians are compared:
  (a) sha256sum -c --quiet of a sums file listing every regular file of the GOROOT (written
      before timing): the baseline an operator could script by hand, with no mode, type,
      missing- or added-file checks and no signature.
  (b) `rescue verify --prefix P` as an operator runs it (a fresh Python, signature check of
      the kept manifest, every file's sha256, mode and type, missing and added paths), and
      installer.verify.verify in-process (without interpreter start-up).
No asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from installer import install  # noqa: E402
from installer import verify as check  # noqa: E402
from installer.prefix import Layout  # noqa: E402
from keys import allowed_signers  # noqa: E402
from tests.support import bundles, gobin, upstream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TC = "go1.21.13.linux-amd64"


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sums_file(goroot: Path, dest: Path) -> int:
    lines = []
    for dirpath, _dirs, files in os.walk(goroot):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    lines.append(f"{hashlib.sha256(f.read()).hexdigest()}  {p}\n")
    dest.write_text("".join(lines))
    return len(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    archive = gobin.godl_archive()
    with tempfile.TemporaryDirectory(prefix="rescue-verify-bench-") as tmp, \
            upstream.serve(upstream.godl_routes({archive.name: archive})) as url:
        work = Path(tmp)
        signing = bundles.make_signing(work / "keys")
        spec = bundles.write_spec(work / "spec.toml", signing.key, url, level=3)
        bundle = bundles.build_bundle(spec, work / "out", work / "cache").path
        signers = allowed_signers.load(signing.signers)
        prefix = work / "prefix"
        install.install(bundle, prefix, signers, str(signing.signers))
        goroot = prefix / "versions" / TC
        sums = work / "SHA256SUMS"
        count = sums_file(goroot, sums)
        size = sum(f.stat().st_size for f in goroot.rglob("*")
                   if f.is_file() and not f.is_symlink())
        cli = [sys.executable, "-c", "import sys; from installer.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "verify", "--prefix", str(prefix),
               "--trust", str(signing.signers)]

        def baseline() -> None:
            subprocess.run(["sha256sum", "-c", "--quiet", str(sums)], check=True)

        def rescue_cli() -> None:
            subprocess.run(cli, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)

        def rescue_lib() -> None:
            report = check.verify(Layout(prefix), signers, str(signing.signers))
            assert report.ok, report

        times: dict = {"sha256sum -c": [], "rescue verify": [], "verify in-process": []}
        baseline(), rescue_cli()  # warm the page cache for both
        for _ in range(args.repeat):  # alternating, so drift hits every side alike
            times["sha256sum -c"].append(timed(baseline))
            times["rescue verify"].append(timed(rescue_cli))
            times["verify in-process"].append(timed(rescue_lib))
        # Ask the library how many files it checked (go.env recomputed, not hashed).
        report = check.verify(Layout(prefix), signers, str(signing.signers))
        # Leave the read-only tree removable.
        subprocess.run(["chmod", "-R", "u+w", str(prefix)], check=True)

    base = statistics.median(times["sha256sum -c"])
    print(f"GOROOT {TC}: {count} files, {size / 1e6:.0f} MB (rescue hashes {report.files} "
          f"files, also modes, types, links, missing and added paths); warm page cache; "
          f"{os.cpu_count()} CPUs; {args.repeat} alternating runs, medians")
    for name, runs in times.items():
        med = statistics.median(runs)
        print(f"{name:<20} {med:7.2f} s   (min {min(runs):.2f}, max {max(runs):.2f})   "
              f"ratio {med / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
