"""Build and load the native CPU kernel (``gru.cpp``, ``cache.cpp``, ``layernorm_gru.cpp``,
``mingru.cpp``, ``step.cpp``, ``peak.cpp``) with ``torch.utils.cpp_extension``.

Built on first use into a cache directory (``$GRUKIT_CACHE/native`` or
``~/.cache/grukit/native``), one sub-directory per build key (``build_inputs``: the
sources' folder and contents, compiler, flags, torch build, Python ABI), so later
processes load it in milliseconds and two checkouts sharing a cache never rebuild each
other's kernel. Nothing is printed: the build (about a minute on 2 cores) is logged at
INFO on the ``grukit.native`` logger. Without a C++ compiler, or if the build fails,
``load()`` returns None and warns once (RuntimeWarning), saying why; "auto" then uses the
"fused" backend. ``failure()`` says why, ``failure_log()`` holds the compiler's output.

Vectorisation: ``at::vec::Vectorized`` uses AVX-512 or AVX2 only when the build defines
the CPU capability, so the flags are chosen from ``/proc/cpuinfo``: AVX-512 (avx512f, bw,
dq, vl), else AVX2 (avx2 and fma), else a plain ``-O3`` build ("generic": at::vec's
portable code, which is NEON on an ARM64 CPU and scalar loops elsewhere).
``GRUKIT_ISA`` in the environment forces one of them (``avx512``, ``avx2``, ``generic``;
``auto`` or unset: the CPU's best), each its own build, so one machine measures the
kernel other CPUs get; one the CPU lacks is refused (the kernel would die on its first
instruction), as an unavailable kernel: warned, and "auto" uses "fused".

Sanitizers: with ``GRUKIT_SANITIZE=1`` in the environment the kernel is built with
``-fsanitize=address,undefined`` (``-O1 -g``, its own build directory, as the flags are part
of the build key). Python itself is not instrumented, so the process must start with the
ASan runtime preloaded (``make sanitize`` does: ``LD_PRELOAD=$(c++ -print-file-name=libasan.so)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import sysconfig
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import torch

SOURCES = ("gru.cpp", "cache.cpp", "layernorm_gru.cpp", "mingru.cpp", "step.cpp", "peak.cpp")
#: Included by the sources: part of the build key.
HEADERS = (
    "cache.h",
    "gemm.h",
    "gru_gates.h",
    "layernorm_gru.h",
    "layernorm_rows.h",
    "loops.h",
    "mingru.h",
    "peak.h",
    "step.h",
)
_lock = threading.Lock()
_module: ModuleType | None = None
_failure: str | None = None  # why the kernel is unavailable, once known
_failure_log: str | None = None  # the build's whole error output, when it failed
log = logging.getLogger("grukit.native")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "fma"}
AVX2 = {"avx2", "fma"}
#: GRUKIT_ISA's values: the instruction sets the kernel can be built for, best first.
ISAS = ("avx512", "avx2", "generic")
_NEEDS = {"avx512": AVX512, "avx2": AVX2, "generic": set()}


def runnable_isas(cpu: set[str]) -> list[str]:
    """The ``ISAS`` a CPU with feature flags ``cpu`` runs, widest first ("generic" always)."""
    return [isa for isa in ISAS if _NEEDS[isa] <= cpu]


def best_isa(cpu: set[str]) -> str:
    """The widest of ``ISAS`` a CPU with feature flags ``cpu`` runs."""
    return runnable_isas(cpu)[0]


def isa() -> str:
    """The instruction set the kernel is built for: $GRUKIT_ISA when set (and not "auto"),
    else the CPU's best. Raises ValueError for a value not in ``ISAS`` + ("auto",), or an
    ISA this CPU lacks."""
    cpu = cpu_flags()
    asked = os.environ.get("GRUKIT_ISA", "").strip().lower()
    if asked in ("", "auto"):
        return best_isa(cpu)
    if asked not in ISAS:
        raise ValueError(
            f"GRUKIT_ISA: expected one of {[*ISAS, 'auto']}, got {os.environ['GRUKIT_ISA']!r}"
        )
    missing = sorted(_NEEDS[asked] - cpu)
    if missing:
        raise ValueError(
            f"GRUKIT_ISA: {asked} needs the CPU flags {sorted(_NEEDS[asked])}; "
            f"this CPU lacks {missing} (its best is {best_isa(cpu)})"
        )
    return asked


SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]


def sanitize() -> bool:
    """Whether $GRUKIT_SANITIZE asks for an AddressSanitizer + UBSan build ("1", "true", "yes")."""
    return os.environ.get("GRUKIT_SANITIZE", "").strip().lower() in ("1", "true", "yes")


def compile_flags() -> list[str]:
    """-O3, plus the at::vec capability macros and instruction flags of ``isa()`` (AVX-512,
    else AVX2 + FMA, else none: "generic"); with ``sanitize()``, -O1 and the sanitizer flags
    instead of -O3. Raises ValueError as ``isa()`` does."""
    flags = ["-O1", *SANITIZE_FLAGS] if sanitize() else ["-O3"]
    flags.append("-fopenmp")  # at::parallel_for is OpenMP inlined into the extension
    target = isa()
    if target == "avx512":
        flags += ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512", "-mavx512f", "-mavx512bw"]
        flags += ["-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c"]
    elif target == "avx2":
        flags += ["-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2", "-mavx2", "-mfma"]
        if "f16c" in cpu_flags():
            flags.append("-mf16c")
    return flags


def cache_dir() -> Path:
    """Where builds are kept: $GRUKIT_CACHE/native, else ~/.cache/grukit/native."""
    root = os.environ.get("GRUKIT_CACHE") or os.path.join(Path.home(), ".cache", "grukit")
    return Path(root) / "native"


def compiler() -> str | None:
    """Path of the C++ compiler cpp_extension will call ($CXX or c++), None if absent."""
    return shutil.which(os.environ.get("CXX", "c++"))


def link_flags() -> list[str]:
    """OpenMP, plus the sanitizer runtime with ``sanitize()``."""
    return ["-fopenmp", *(SANITIZE_FLAGS[:1] if sanitize() else [])]


def build_inputs(flags: list[str], folder: Path | None = None) -> dict[str, str]:
    """What the compiled binary depends on, by name: the sources' folder (``folder``,
    default this package's) and every source and header's contents, the compiler, the
    compile flags (CPU capability, sanitizers) and link flags, the torch build and the
    Python ABI. Two builds with equal inputs are interchangeable."""
    here = (folder or Path(__file__).parent).resolve()
    return {
        # torch's build.ninja names absolute paths: two checkouts sharing a cache would
        # otherwise rebuild each other's kernel on every load.
        "folder": str(here),
        **{
            f"source {name}": hashlib.sha256((here / name).read_bytes()).hexdigest()
            for name in SOURCES + HEADERS
        },
        "compiler": os.path.realpath(compiler() or os.environ.get("CXX", "c++")),
        "flags": " ".join(flags),
        "link flags": " ".join(link_flags()),
        "torch": f"{torch.__version__} {torch.version.git_version}",
        "python": str(sysconfig.get_config_var("SOABI") or sys.implementation.cache_tag),
    }


def build_key(inputs: Mapping[str, str]) -> str:
    """A short hash of ``build_inputs``: the build's cache sub-directory and module name."""
    h = hashlib.sha256()
    for name in sorted(inputs):
        h.update(f"{name}={inputs[name]}\0".encode())
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _compiler_environment() -> Iterator[None]:
    """Without $LD_PRELOAD while the compiler runs: a sanitizer run preloads the ASan
    runtime into Python, and it would otherwise slow every compiler process too."""
    preload = os.environ.pop("LD_PRELOAD", None)
    try:
        yield
    finally:
        if preload is not None:
            os.environ["LD_PRELOAD"] = preload


def _fail(reason: str, detail: str | None = None) -> None:
    global _failure, _failure_log
    _failure, _failure_log = reason, detail or reason
    warnings.warn(
        f"grukit: the native CPU kernel is unavailable ({reason}); "
        "backend 'auto' uses 'fused' instead",
        RuntimeWarning,
        stacklevel=3,
    )


def failure() -> str | None:
    """Why the native kernel could not be loaded, or None (not tried yet, or loaded)."""
    return _failure


def failure_log() -> str | None:
    """The failed build's whole output (the compiler's errors), or None."""
    return _failure_log


def load() -> ModuleType | None:
    """The compiled extension module, built on first use; None (warned once) if impossible."""
    global _module
    if _module is not None or _failure is not None:
        return _module
    with _lock:
        if _module is not None or _failure is not None:
            return _module
        if compiler() is None:
            _fail(f"no C++ compiler found: {os.environ.get('CXX', 'c++')!r} is not on PATH")
            return None
        try:
            flags = compile_flags()
        except ValueError as err:  # GRUKIT_ISA asks for what this CPU cannot run
            _fail(str(err))
            return None
        from torch.utils import cpp_extension

        key = build_key(build_inputs(flags))
        name = f"grukit_native_{key}"
        build = cache_dir() / key
        try:
            build.mkdir(parents=True, exist_ok=True)
            fresh = not any(build.glob(f"{name}*.so"))
            if fresh:
                log.info("compiling the native CPU kernel into %s (once, about a minute)", build)
            here = Path(__file__).parent
            with _compiler_environment():
                _module = cpp_extension.load(
                    name=name,
                    sources=[str(here / s) for s in SOURCES],
                    extra_cflags=flags,
                    extra_ldflags=link_flags(),
                    build_directory=str(build),
                    verbose=False,
                )
            if fresh:
                log.info("native CPU kernel ready: %s", build)
        except (OSError, RuntimeError, ImportError, SystemExit) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            _fail(f"build failed: {first[:300]}; see {build}", str(err))
            return None
        return _module
