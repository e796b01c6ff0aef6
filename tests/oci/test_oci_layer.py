from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild.entry import TreeEntry
from minibuild.errors import BuildError, InputError
from minibuild.oci.layer import plan_layer, tar_info, write_layer
from minibuild.oci.spec import MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD

from .helpers import tree_entries, write_tree


def members(blob: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(blob) as tar:
        return tar.getmembers()


def raw_tar(blob: Path) -> bytes:
    data = blob.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def header_blocks(tar_bytes: bytes) -> list[bytes]:
    """The 512-byte header blocks of a tar, walking sizes ourselves (independent of tarfile's reader)."""
    blocks, offset = [], 0
    while offset + 512 <= len(tar_bytes):
        block = tar_bytes[offset : offset + 512]
        if block == b"\0" * 512:
            break
        blocks.append(block)
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        offset += 512 + (size + 511) // 512 * 512
    return blocks


# --- determinism ---------------------------------------------------------------------------------------


def test_same_digest_across_umask_mtimes_paths_and_cwd(tmp_path, monkeypatch):
    old_umask = os.umask(0o022)
    try:
        files_a = write_tree(tmp_path / "checkout-a", mtime=1_000_000_000)
        monkeypatch.chdir(tmp_path)
        layer_a = write_layer(tree_entries(files_a), str(tmp_path / "a.tgz"))

        os.umask(0o077)
        files_b = write_tree(tmp_path / "elsewhere" / "checkout-b", mtime=1_700_000_000)
        for path in files_b.values():
            path.chmod(0o600)  # host modes must not leak into the layer either
        work = tmp_path / "other-cwd"
        work.mkdir()
        monkeypatch.chdir(work)
        layer_b = write_layer(tree_entries(files_b), str(tmp_path / "b.tgz"))
    finally:
        os.umask(old_umask)
    assert layer_a == layer_b
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_input_order_does_not_matter(tmp_path):
    entries = tree_entries(write_tree(tmp_path / "src"))
    first = write_layer(entries, str(tmp_path / "1"))
    second = write_layer(list(reversed(entries)), str(tmp_path / "2"))
    assert first == second


def test_digests_name_the_bytes_written(tmp_path):
    dest = tmp_path / "layer"
    layer = write_layer(tree_entries(write_tree(tmp_path / "src")), str(dest))
    data = dest.read_bytes()
    assert layer.descriptor.media_type == MEDIA_TYPE_LAYER_GZIP
    assert layer.descriptor.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.descriptor.size == len(data)
    tar = gzip.decompress(data)
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert layer.uncompressed_size == len(tar)
    assert layer.diff_id != layer.descriptor.digest


# --- tar headers ---------------------------------------------------------------------------------------


def test_tar_members_sorted_with_parents_and_normalised_headers(tmp_path):
    dest = tmp_path / "layer"
    write_layer(tree_entries(write_tree(tmp_path / "src")), str(dest), epoch=1_700_000_000)
    got = members(dest)
    assert [m.name for m in got] == [
        "bin",
        "etc",
        "etc/hello",
        "etc/passwd",
        "tmp",
        "usr",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/run.sh",
        "var",
        "var/lib",
        "var/lib/big.bin",
    ]
    by_name = {m.name: m for m in got}
    for m in got:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == 1_700_000_000
        assert m.pax_headers == {}  # so no atime, ctime or anything else of the host
    assert by_name["bin"].issym() and by_name["bin"].linkname == "usr/bin" and by_name["bin"].mode == 0o777
    assert by_name["tmp"].isdir() and by_name["tmp"].mode == 0o1777
    assert by_name["usr/local"].isdir() and by_name["usr/local"].mode == 0o755
    assert by_name["usr/local/bin/run.sh"].mode == 0o755
    assert by_name["var/lib/big.bin"].mode == 0o644  # the entry's mode, not the host's 0600
    assert by_name["var/lib/big.bin"].size == 256 * 4096


def test_raw_headers_are_plain_ustar_without_pax_records(tmp_path):
    dest = tmp_path / "layer"
    write_layer(tree_entries(write_tree(tmp_path / "src")), str(dest), compression="none")
    blocks = header_blocks(dest.read_bytes())
    assert len(blocks) == 12
    for block in blocks:
        assert block[156:157] in (b"0", b"2", b"5")  # regular, symlink, dir: no 'x' or 'g' pax records
        assert block[257:265] == b"ustar\x0000"
        assert block[265:297] == b"\0" * 32 and block[297:329] == b"\0" * 32  # uname, gname
        assert block[108:116] == b"0000000\0" and block[116:124] == b"0000000\0"  # uid, gid
        assert block[136:148] == b"00000000000\0"  # mtime 0
    assert blocks[1][0:4] == b"etc/" and blocks[1][4:5] == b"\0"  # directories end in a slash
    assert len(dest.read_bytes()) % 10240 == 0


def test_pax_records_only_where_ustar_cannot_hold_the_value(tmp_path):
    long_name = "/opt/" + "d" * 120 + "/file"
    long_target = "/" + "t" * 150
    entries = [
        TreeEntry(long_name, "file", data=b"x"),
        TreeEntry("/opt/link", "symlink", target=long_target),
        TreeEntry("/opt/caf\u00e9", "file", data=b"utf-8 name"),
        TreeEntry("/opt/short", "file", data=b"y"),
    ]
    dest = tmp_path / "layer"
    write_layer(entries, str(dest), compression="none")
    by_name = {m.name: m for m in members(dest)}
    assert by_name[long_name[1:]].pax_headers == {"path": long_name[1:]}
    assert by_name["opt/link"].pax_headers == {"linkpath": long_target}
    assert by_name["opt/caf\u00e9"].pax_headers == {"path": "opt/caf\u00e9"}
    assert by_name["opt/short"].pax_headers == {}
    assert by_name["opt"].pax_headers == {}


def test_files_of_8_gib_get_a_pax_size_record():
    entry = TreeEntry("/big", "file", data=b"")
    small = tar_info(entry, 8**11 - 1, 0).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    big = tar_info(entry, 8**11, 0).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert len(small) == 512
    assert big[156:157] == b"x" and b" size=8589934592\n" in big


def test_setuid_kept_only_when_given(tmp_path):
    entries = [
        TreeEntry("/usr/bin/su", "file", 0o4755, data=b"su"),
        TreeEntry("/usr/bin/plain", "file", 0o755, data=b"plain"),
        TreeEntry("/usr/bin/default", "file", data=b"default"),
    ]
    dest = tmp_path / "layer"
    write_layer(entries, str(dest))
    modes = {m.name: m.mode for m in members(dest)}
    assert modes == {"usr": 0o755, "usr/bin": 0o755, "usr/bin/default": 0o644, "usr/bin/plain": 0o755,
                     "usr/bin/su": 0o4755}  # fmt: skip


def test_order_puts_a_directory_right_before_its_subtree(tmp_path):
    entries = [TreeEntry(p, "file", data=p.encode()) for p in ("/a-b", "/a/b", "/a.c", "/a/b-c/d", "/A")]
    dest = tmp_path / "layer"
    write_layer(entries, str(dest))
    assert [m.name for m in members(dest)] == ["A", "a", "a/b", "a/b-c", "a/b-c/d", "a-b", "a.c"]


def test_paths_are_normalised(tmp_path):
    [entry] = [e for e in plan_layer([TreeEntry("//usr/./bin//tool/", "file", data=b"t")]) if e.kind == "file"]
    assert entry.path == "/usr/bin/tool"


# --- gzip and other compressions -----------------------------------------------------------------------


@pytest.mark.parametrize(("level", "xfl"), [(1, 4), (6, 0), (9, 2)])
def test_gzip_header_is_pinned(tmp_path, level, xfl):
    dest = tmp_path / "layer"
    write_layer([TreeEntry("/f", "file", data=b"data")], str(dest), gzip_level=level)
    data = dest.read_bytes()
    # magic, deflate, no flags (so no file name), MTIME 0, XFL, OS 255 (unknown)
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 0xFF])
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        f.read()
        assert f.mtime == 0


def test_gzip_level_changes_the_digest_not_the_diff_id(tmp_path):
    entries = tree_entries(write_tree(tmp_path / "src"))
    fast = write_layer(entries, str(tmp_path / "1"), gzip_level=1)
    best = write_layer(entries, str(tmp_path / "9"), gzip_level=9)
    assert fast.diff_id == best.diff_id
    assert fast.descriptor.digest != best.descriptor.digest


def test_uncompressed_layer_digest_is_its_diff_id(tmp_path):
    layer = write_layer([TreeEntry("/f", "file", data=b"data")], str(tmp_path / "l"), compression="none")
    assert layer.descriptor.media_type == MEDIA_TYPE_LAYER
    assert layer.descriptor.digest == layer.diff_id
    assert layer.descriptor.size == layer.uncompressed_size


def test_zstd_layer(tmp_path):
    zstandard = pytest.importorskip("zstandard", reason="compression zstd needs the zstandard package")
    entries = tree_entries(write_tree(tmp_path / "src"))
    layer = write_layer(entries, str(tmp_path / "z"), compression="zstd")
    again = write_layer(entries, str(tmp_path / "z2"), compression="zstd")
    assert layer == again
    assert layer.descriptor.media_type == MEDIA_TYPE_LAYER_ZSTD
    tar = zstandard.ZstdDecompressor().stream_reader((tmp_path / "z").read_bytes()).read()
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == layer.diff_id
    assert layer.diff_id == write_layer(entries, str(tmp_path / "g")).diff_id


def test_large_source_is_streamed_not_loaded(tmp_path):
    big = tmp_path / "sparse"
    with open(big, "wb") as f:
        f.truncate(64 << 20)
    tracemalloc.start()
    try:
        layer = write_layer([TreeEntry("/big", "file", source=str(big))], str(tmp_path / "l"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert layer.uncompressed_size > 64 << 20
    assert peak < 16 << 20


# --- duplicates and conflicts --------------------------------------------------------------------------


def test_identical_duplicates_are_merged(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"same")
    copy = tmp_path / "b"
    copy.write_bytes(b"same")
    entries = [
        TreeEntry("/etc/x", "file", source=str(src), origin="rule one"),
        TreeEntry("/etc/x", "file", source=str(copy), origin="rule two"),
        TreeEntry("/etc/x", "file", data=b"same", origin="rule three"),
        TreeEntry("/etc", "dir", origin="rule four"),
    ]
    assert [e.path for e in plan_layer(entries)] == ["/etc", "/etc/x"]


@pytest.mark.parametrize(
    "other",
    [
        TreeEntry("/etc/x", "file", data=b"different", origin="rule two"),
        TreeEntry("/etc/x", "file", 0o755, data=b"same", origin="rule two"),
        TreeEntry("/etc/x", "symlink", target="y", origin="rule two"),
        TreeEntry("/etc/x", "dir", origin="rule two"),
    ],
)
def test_conflicting_duplicates_name_both_origins(other):
    first = TreeEntry("/etc/x", "file", data=b"same", origin="rule one")
    with pytest.raises(InputError) as err:
        plan_layer([first, other])
    assert "`/etc/x`" in err.value.message
    assert "rule one" in err.value.message and "rule two" in err.value.message


def test_entry_under_a_symlink_is_refused():
    entries = [
        TreeEntry("/lib", "symlink", target="usr/lib", origin="merged usr"),
        TreeEntry("/lib/libc.so.6", "file", data=b"elf", origin="closure of /bin/sh"),
    ]
    with pytest.raises(InputError, match="closure of /bin/sh.*symlink to `usr/lib`.*merged usr"):
        plan_layer(entries)


def test_entry_under_a_file_is_refused():
    entries = [TreeEntry("/etc", "file", data=b"", origin="one"), TreeEntry("/etc/x", "dir", origin="two")]
    with pytest.raises(InputError, match="which is a file"):
        plan_layer(entries)


# --- bad input and failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "etc/x", "kind": "file", "data": b""}, "must be absolute"),
        ({"path": "/etc/../x", "kind": "file", "data": b""}, "`..`"),
        ({"path": "/x", "kind": "fifo"}, "has kind"),
        ({"path": "/x", "kind": "file"}, "exactly one of"),
        ({"path": "/x", "kind": "file", "data": b"", "source": "/y"}, "exactly one of"),
        ({"path": "/x", "kind": "file", "data": b"", "mode": 0o10000}, "mode"),
        ({"path": "/x", "kind": "symlink"}, "target"),
        ({"path": "/x", "kind": "dir", "data": b""}, "cannot have"),
        ({"path": "/", "kind": "file", "data": b""}, "root"),
        ({"path": "/x\udcff", "kind": "dir"}, "UTF-8"),
    ],
)
def test_invalid_entries(kwargs, message):
    with pytest.raises(InputError, match=message):
        plan_layer([TreeEntry(origin="test", **kwargs)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compression": "bzip2"}, "unknown compression"),
        ({"gzip_level": 10}, "gzip level"),
        ({"epoch": -1}, "epoch"),
        ({"epoch": 1.5}, "epoch"),
    ],
)
def test_invalid_options(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        write_layer([TreeEntry("/x", "dir")], str(tmp_path / "l"), **kwargs)
    assert os.listdir(tmp_path) == []


def test_missing_and_odd_sources(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_layer(
            [TreeEntry("/x", "file", source=str(tmp_path / "nope"), origin="o")], str(tmp_path / "l")
        )
    with pytest.raises(InputError, match="is a directory"):
        write_layer([TreeEntry("/x", "file", source=str(tmp_path), origin="o")], str(tmp_path / "l"))
    assert sorted(os.listdir(tmp_path)) == []


def test_no_space_left_is_a_build_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BuildError, match="no space left writing `.*layer`"):
        write_layer([TreeEntry("/x", "file", data=b"x")], str(tmp_path / "layer"))
    assert os.listdir(tmp_path) == []


def test_existing_blob_is_replaced_atomically(tmp_path):
    dest = tmp_path / "layer"
    dest.write_bytes(b"old")
    write_layer([TreeEntry("/x", "file", data=b"x")], str(dest))
    assert dest.read_bytes()[:2] == b"\x1f\x8b"
    assert os.listdir(tmp_path) == ["layer"]


# --- properties ----------------------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "a-b", "a.b", "B", "\u00e9", "x" * 60])
_paths = st.lists(_names, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths=st.lists(_paths, min_size=1, max_size=12, unique=True), seed=st.randoms())
def test_any_tree_is_ordered_and_order_independent(tmp_path, paths, seed):
    # Leaves are files unless another path lies under them, in which case they are directories.
    entries = []
    for p in paths:
        if any(q.startswith(p + "/") for q in paths):
            entries.append(TreeEntry(p, "dir", origin=p))
        else:
            entries.append(TreeEntry(p, "file", data=p.encode(), origin=p))
    shuffled = list(entries)
    seed.shuffle(shuffled)
    first = write_layer(entries, str(tmp_path / "1"), compression="none")
    second = write_layer(shuffled, str(tmp_path / "2"), compression="none")
    assert first == second
    names = [m.name for m in members(tmp_path / "1")]
    assert len(names) == len(set(names))
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert not parent or parent in names[:i]
    assert names == sorted(names, key=lambda n: n.split("/"))


def test_tar_bytes_are_pinned(tmp_path):
    """A change here changes every image digest minibuild makes: it must only ever change on purpose."""
    entries = [
        TreeEntry("/etc/passwd", "file", data=b"root:x:0:0::/root:/bin/sh\n"),
        TreeEntry("/bin", "symlink", target="usr/bin"),
        TreeEntry("/usr/bin/tool", "file", 0o4755, data=b"\x7fELF"),
        TreeEntry("/tmp", "dir", 0o1777),
        TreeEntry("/opt/" + "n" * 120, "file", data=b"long"),
    ]
    layer = write_layer(entries, str(tmp_path / "l"), compression="none", epoch=1_700_000_000)
    assert layer.diff_id == "sha256:5383f82b017991ac1c586dfb42270d5f41d6555ee00d87f07d0468d8e31c31ad"
    assert layer.uncompressed_size == 10240


def test_zstd_without_zstandard_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    with pytest.raises(BuildError, match="zstd layers need the Python package `zstandard`"):
        write_layer([TreeEntry("/x", "dir")], str(tmp_path / "l"), compression="zstd")
    assert os.listdir(tmp_path) == []
