"""The content-hashed cache every stage uses: read when present and sound, else compute and write atomically."""

import io

import numpy as np

from echoscript_utils.artifacts import cached, read_cached, write_cached


def test_cached_computes_once_then_reads(tmp_path):
    calls = []
    path = tmp_path / "tags" / "abc.json"
    first = cached(path, lambda: calls.append(1) or {"tags": [1, 2]})
    again = cached(path, lambda: calls.append(1) or {"tags": "never"})
    assert first == again == {"tags": [1, 2]} and calls == [1]
    assert path.read_text(encoding="utf-8") == '{\n  "tags": [\n    1,\n    2\n  ]\n}\n'  # write_json's form
    assert cached(path, lambda: {"tags": 3}, refresh=True) == {"tags": 3} and read_cached(path) == {"tags": 3}
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left behind


def test_a_damaged_or_invalid_entry_is_computed_again(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"tags": [1, ', encoding="utf-8")  # cut short by a crash of an older writer
    assert cached(path, lambda: {"tags": 1}) == {"tags": 1} and read_cached(path) == {"tags": 1}
    path.write_text('{"other": 1}', encoding="utf-8")
    assert read_cached(path, valid=lambda e: "tags" in e) is None
    assert cached(path, lambda: {"tags": 2}, valid=lambda e: e["tags"]) == {"tags": 2}  # KeyError: a miss
    one_line = tmp_path / "y.json"
    write_cached(one_line, {"b": 1, "a": None}, indent=None)
    assert one_line.read_text(encoding="utf-8") == '{"a": null, "b": 1}\n'


def test_arrays_are_plain_npy_files(tmp_path):
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "emb" / "k.npy"
    out = cached(path, lambda: rows, fmt="npy")
    buf = io.BytesIO()
    np.save(buf, rows)
    assert path.read_bytes() == buf.getvalue()  # what np.save writes: older cache files read the same way
    back = cached(path, lambda: 1 / 0, fmt="npy")
    assert back.dtype == np.float32 and np.array_equal(back, out)
    path.write_bytes(path.read_bytes()[:40])  # truncated
    assert read_cached(path, fmt="npy") is None
    assert np.array_equal(cached(path, lambda: rows + 1, fmt="npy"), rows + 1)
    assert read_cached(tmp_path / "absent.npy", fmt="npy") is None
    assert cached(None, lambda: 7) == 7  # no cache: computed every time


def test_products_get_the_mode_a_plain_write_would_give(tmp_path):
    """Temporary files and folders are created private (0600/0700); the products swapped in must not stay so."""
    import os

    from echoscript_utils.artifacts import atomic_path, staged_dir

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table.csv") as tmp:
            tmp.write_text("a,b\n")
        with staged_dir(tmp_path / "run") as stage:
            (stage / "x.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
