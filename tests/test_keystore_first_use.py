"""The keystore's master key file made by several processes at once (workers started together
on a fresh home): each reads the one key that was made, never a file still being written."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

PROCESSES = 12


def _open(key_file: str, start: object, keys: object) -> None:
    from penguinctl.providers.secrets.keystore import KeystoreBackend

    start.wait()  # type: ignore[attr-defined]
    store = KeystoreBackend(Path(key_file).parent / "secrets", key_file=Path(key_file))
    try:
        store._cipher(create=True)
        keys.put(Path(key_file).read_text())  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the test
        keys.put(f"error: {exc}")  # type: ignore[attr-defined]


def test_processes_making_the_key_together_all_get_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        key_file = tmp_path / f"home{attempt}" / "keystore.key"
        start, keys = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(str(key_file), start, keys))
                 for _ in range(PROCESSES)]  # fmt: skip
        for p in procs:
            p.start()
        got = [keys.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert not [g for g in got if g.startswith("error")], got
        assert len(set(got)) == 1, got
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert not [p for p in key_file.parent.iterdir() if p.name.startswith(".tmp-")]
