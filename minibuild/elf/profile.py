"""What the target loader has compiled in: default directories, $LIB, hwcaps names, cache flags.

Read from the sysroot's own loader where possible (the NUL-separated default-directory string and
the version banner are plain bytes inside ld.so); the per-architecture table below fills in the
rest and is the fallback when the loader's bytes do not say.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from minibuild.elf.parse import ElfInfo

EM_386, EM_ARM, EM_X86_64, EM_AARCH64, EM_PPC64, EM_S390, EM_RISCV = 3, 40, 62, 183, 21, 22, 243
EF_ARM_ABI_FLOAT_HARD = 0x400


@dataclass(frozen=True)
class Arch:
    """A target ABI: one (e_machine, class, byte order) plus the distro facts that go with it."""

    name: str  # Debian multiarch triplet
    machine: int
    elfclass: int
    data: int
    oci: str | None  # OCI platform architecture
    variant: str | None  # OCI platform variant
    glibc_interp: str  # canonical PT_INTERP, used for library roots
    musl_arch: str
    cache_flags: int  # the only ld.so.cache entry flags this loader accepts (docs/loader.md#sec-4-2)
    hwcaps: tuple[str, ...]  # glibc-hwcaps subdirectories, best first
    platform: str  # baseline AT_PLATFORM ($PLATFORM, legacy subdir)
    platforms: tuple[str, ...]  # every $PLATFORM value a CPU of this family may report
    legacy_hwcap: tuple[str, ...] = ()  # legacy "important hwcap" subdir names on a baseline CPU
    upstream_dirs: tuple[str, ...] = ("/lib", "/usr/lib")

    @property
    def debian_dirs(self) -> tuple[str, ...]:
        return (f"/lib/{self.name}", f"/usr/lib/{self.name}", "/lib", "/usr/lib")


ARCHES = (
    Arch("x86_64-linux-gnu", EM_X86_64, 2, 1, "amd64", None, "/lib64/ld-linux-x86-64.so.2", "x86_64", 0x0303,
         ("x86-64-v4", "x86-64-v3", "x86-64-v2"), "x86_64", ("x86_64", "haswell", "xeon_phi"), ("x86_64",),
         ("/lib64", "/usr/lib64")),
    Arch("x86_64-linux-gnux32", EM_X86_64, 1, 1, None, None, "/libx32/ld-linux-x32.so.2", "x32", 0x0803,
         (), "x86_64", ("x86_64", "haswell", "xeon_phi"), ("x86_64",), ("/libx32", "/usr/libx32")),
    Arch("i386-linux-gnu", EM_386, 1, 1, "386", None, "/lib/ld-linux.so.2", "i386", 0x0003,
         (), "i686", ("i386", "i486", "i586", "i686")),
    Arch("aarch64-linux-gnu", EM_AARCH64, 2, 1, "arm64", "v8", "/lib/ld-linux-aarch64.so.1", "aarch64", 0x0A03,
         (), "aarch64", ("aarch64",)),
    Arch("arm-linux-gnueabihf", EM_ARM, 1, 1, "arm", "v7", "/lib/ld-linux-armhf.so.3", "armhf", 0x0903,
         (), "v7l", ("v7l", "v8l")),
    Arch("arm-linux-gnueabi", EM_ARM, 1, 1, "arm", "v5", "/lib/ld-linux.so.3", "arm", 0x0003,
         (), "v5l", ("v5l", "v6l", "v7l")),
    Arch("powerpc64le-linux-gnu", EM_PPC64, 2, 1, "ppc64le", None, "/lib64/ld64.so.2", "powerpc64le", 0x0503,
         ("power10", "power9"), "power8", ("power8", "power9", "power10"), (), ("/lib64", "/usr/lib64")),
    Arch("s390x-linux-gnu", EM_S390, 2, 2, "s390x", None, "/lib/ld64.so.1", "s390x", 0x0403,
         ("z16", "z15", "z14", "z13"), "z900", ("z900", "z13", "z14", "z15", "z16"), (), ("/lib64", "/usr/lib64")),
    Arch("riscv64-linux-gnu", EM_RISCV, 2, 1, "riscv64", None, "/lib/ld-linux-riscv64-lp64d.so.1", "riscv64",
         0x1003, (), "riscv64", ("riscv64",), (), ("/lib64/lp64d", "/usr/lib64/lp64d")),
)


def arch_of(info: ElfInfo) -> Arch | None:
    """The ABI an ELF object belongs to, or None when minibuild has no profile for it."""
    for arch in ARCHES:
        if (arch.machine, arch.elfclass, arch.data) != (info.machine, info.elfclass, info.data):
            continue
        if arch.machine == EM_ARM and bool(info.e_flags & EF_ARM_ABI_FLOAT_HARD) != (arch.musl_arch == "armhf"):
            continue
        return arch
    return None


@dataclass(frozen=True)
class LoaderProfile:
    """How one dynamic loader searches; all paths in-image."""

    kind: str  # "glibc" | "musl"
    interp: str | None
    arch: Arch
    default_dirs: tuple[str, ...]  # no trailing '/'
    lib: str  # the $LIB expansion
    version: tuple[int, int] | None
    legacy_subdirs: tuple[str, ...]  # pre-2.37 hwcap subdirs, most specific first
    from_loader: bool  # default dirs were read out of the loader binary

    @property
    def is_musl(self) -> bool:
        return self.kind == "musl"


_DIRS_RE = re.compile(rb"(?:/[A-Za-z0-9_.+/-]*lib[A-Za-z0-9_.+/-]*/\x00){2,16}")
_VERSION_RE = re.compile(rb"release version (\d+)\.(\d+)")
_PROFILE_CACHE: dict[tuple, LoaderProfile] = {}


def glibc_profile(arch: Arch, interp: str | None, loader_bytes: bytes | None, key: tuple | None) -> LoaderProfile:
    """Profile of a glibc loader; `loader_bytes` is the content of the sysroot's ld.so if found."""
    cache_key = (arch.name, interp, key)
    if key is not None and cache_key in _PROFILE_CACHE:
        return _PROFILE_CACHE[cache_key]
    dirs: tuple[str, ...] = ()
    version = None
    if loader_bytes:
        m = _DIRS_RE.search(loader_bytes)
        if m:
            dirs = tuple(d.decode().rstrip("/") for d in m.group().split(b"\x00") if d)
        v = _VERSION_RE.search(loader_bytes)
        if v:
            version = (int(v.group(1)), int(v.group(2)))
    from_loader = bool(dirs)
    if not dirs:
        dirs = arch.debian_dirs
    # $LIB is the loader's first default directory relative to / (Debian: lib/<triplet>,
    # upstream x86_64: lib64): both are the configured slibdir.
    lib = dirs[0].strip("/")
    legacy = legacy_subdirs(arch) if version is None or version < (2, 37) else ()
    profile = LoaderProfile("glibc", interp, arch, dirs, lib, version, legacy, from_loader)
    if key is not None:
        _PROFILE_CACHE[cache_key] = profile
    return profile


def cached_profile(arch: Arch, interp: str | None, key: tuple) -> LoaderProfile | None:
    return _PROFILE_CACHE.get((arch.name, interp, key))


def musl_profile(arch: Arch, interp: str) -> LoaderProfile:
    return LoaderProfile("musl", interp, arch, ("/lib", "/usr/local/lib", "/usr/lib"), "", None, (), False)


def musl_arch_of(interp: str) -> str | None:
    base = interp.rsplit("/", 1)[-1]
    if base.startswith("ld-musl-") and base.endswith(".so.1"):
        return base[len("ld-musl-") : -len(".so.1")]
    return None


def legacy_subdirs(arch: Arch, platform: str | None = None) -> tuple[str, ...]:
    """glibc <= 2.36 tries every combination of tls / platform / important hwcaps, most specific
    first (as `LD_DEBUG=libs` shows), for a baseline CPU of the family with AT_PLATFORM `platform`."""
    parts = ["tls", platform or arch.platform, *arch.legacy_hwcap]
    out: list[str] = []
    for mask in itertools.product((True, False), repeat=len(parts)):
        sub = "/".join(p for p, keep in zip(parts, mask, strict=True) if keep)
        if sub and sub not in out:
            out.append(sub)
    return tuple(out)


def hwcaps_supported(arch: Arch, cpu_level: str) -> tuple[str, ...]:
    """glibc-hwcaps subdirs a CPU of `cpu_level` supports, best first. Raises ValueError."""
    if cpu_level in ("baseline", arch.platform, arch.name.split("-")[0]) or cpu_level.endswith("-v1"):
        return ()
    if cpu_level not in arch.hwcaps:
        raise ValueError(cpu_level)
    return arch.hwcaps[arch.hwcaps.index(cpu_level) :]
