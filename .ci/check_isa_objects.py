"""Check that a wheel's compiled code needs nothing beyond baseline x86-64 outside the SIMD kernels.

The wheel must import and run on any x86-64 CPU: only ``cpp/src/isa/*_<isa>.cpp`` are compiled with
AVX2 / AVX-512 flags, and they are called only after the run-time CPU check. Two ways that could break,
both checked on the object files of the wheel's build (scikit-build-core ``build-dir``):

1. a translation unit outside ``isa/`` (core or bindings) contains a VEX/EVEX (AVX*) or post-SSE2
   instruction, i.e. it was compiled with ISA flags;
2. an ``isa/`` object defines a weak/inline (COMDAT) symbol, e.g. a template instantiated with AVX
   flags, which the linker may pick over the baseline copy for every caller. ISA objects may export
   only their kernels (``rowmax_*``, ``scan_blocks_*``).

Usage: python .ci/check_isa_objects.py BUILD_DIR   (x86-64 only; other machines print a skip line)
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

# Mnemonics outside baseline x86-64 (SSE2) that a compiler emits for -msse4/-mpopcnt/-mbmi*; every
# AVX/AVX2/AVX-512 instruction starts with "v".
BEYOND_SSE2 = re.compile(
    r"^(v[a-z0-9]+|popcnt|lzcnt|tzcnt|andn|bextr|blsi|blsmsk|blsr|bzhi|pdep|pext|rorx|sarx|shlx|shrx|"
    r"pshufb|palignr|pabs[bwd]|phadd[wd]|pmaddubsw|pmulhrsw|psign[bwd]|"
    r"pblendvb|blendvp[sd]|blendp[sd]|pblendw|dpp[sd]|ptest|pmin[su][bwd]|pmax[su][bwd]|pmulld|"
    r"pmov[sz]x[bwd][wdq]|pinsr[bdq]|pextr[bdq]|round[sp][sd]|packusdw|pcmpeqq|pcmpgtq|crc32|"
    r"pcmp[ei]str[im]|insertps|extractps|movntdqa|lddqu|hadd[sp][sd]|hsub[sp][sd]|addsubp[sd]|"
    r"movddup|movs[hl]dup)$"
)
ALLOWED_ISA_EXPORT = re.compile(r"rowmax_|scan_blocks_")


def objects(build_dir: Path, target: str) -> list[Path]:
    return sorted((build_dir / "CMakeFiles" / f"{target}.dir").rglob("*.o"))


def beyond_baseline(obj: Path) -> dict[str, set[str]]:
    """Return {function: mnemonics beyond SSE2} for the object's disassembly."""
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, set[str]] = {}
    func = "?"
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            func = head.group(1)
            continue
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().endswith(":"):
            mnemonic = parts[1].split()[0] if parts[1].split() else ""
            if BEYOND_SSE2.match(mnemonic):
                found.setdefault(func, set()).add(mnemonic)
    return found


def isa_exports(obj: Path) -> list[str]:
    """Return the externally visible symbols an ISA object defines that are not rowmax_* kernels."""
    out = subprocess.run(
        ["nm", "--defined-only", "-C", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    bad = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2]
        if kind in "WVu" or (kind.isupper() and not ALLOWED_ISA_EXPORT.search(name)):
            bad.append(f"{kind} {name}")
    return bad


def main(build_dir: Path) -> int:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print(f"ISA check: skipped on {platform.machine()} (x86-64 only)")
        return 0
    core = objects(build_dir, "crossrank_core")
    bindings = objects(build_dir, "_core")
    if not core or not bindings:
        print(f"ISA check: FAILED: no object files under {build_dir}/CMakeFiles", file=sys.stderr)
        return 1
    isa = [o for o in core if "isa" in o.parts]
    plain = [o for o in core + bindings if "isa" not in o.parts]
    failures = []
    for obj in plain:
        for func, mnemonics in beyond_baseline(obj).items():
            failures.append(f"{obj.name}: {func[:120]} uses {sorted(mnemonics)[:6]}")
    for obj in isa:
        failures.extend(f"{obj.name}: exports {sym[:140]}" for sym in isa_exports(obj))
    if not isa:
        failures.append("no isa/*.o objects: the SIMD kernels were not compiled")
    if failures:
        print("ISA check: FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(
        f"ISA check: {len(plain)} baseline objects use no instruction beyond SSE2; "
        f"{len(isa)} ISA objects ({', '.join(o.stem.removesuffix('.cpp') for o in isa)}) export only "
        "their kernels (rowmax_*, scan_blocks_*)"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
