"""The loader: finding files, reading YAML safely, and positions. Hostile input gives SpecError."""

from __future__ import annotations

from pathlib import Path

import pytest

from penguinctl.errors import Location, SpecError, SpecIssue
from penguinctl.spec import load_specs, yamlread
from penguinctl.spec import loader as loader_module
from penguinctl.spec.loader import parse_bytes
from penguinctl.spec.source import YamlList, YamlMap

SPECS = Path(__file__).parent / "specs"
VALID = SPECS / "valid" / "acme.yaml"
TENANT = "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"


def _issues(tmp_path: Path, data: bytes | str, name: str = "spec.yaml") -> list[SpecIssue]:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    with pytest.raises(SpecError) as info:
        load_specs([path])
    return info.value.issues


def _parsed(data: bytes | str) -> tuple[int, int, str]:
    """The one issue the YAML reader finds in ``data`` (no schema validation)."""
    raw = data.encode() if isinstance(data, str) else data
    issues = parse_bytes("f.yaml", raw).issues
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0].location.line, issues[0].location.col, issues[0].message


def _only(tmp_path: Path, data: bytes | str) -> tuple[int, int, str]:
    issues = _issues(tmp_path, data)
    assert len(issues) == 1, [str(i) for i in issues]
    issue = issues[0]
    assert issue.location.file == str(tmp_path / "spec.yaml")
    return issue.location.line, issue.location.col, issue.message


# -- paths -----------------------------------------------------------------------------------
def test_missing_path_is_an_issue(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_specs([missing, VALID])
    assert [str(i) for i in info.value.issues] == [f"{missing}: no such file or directory"]


def test_directory_without_specs_is_an_issue(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path])
    assert info.value.issues[0].message == "no *.yaml or *.yml files in this directory"


def test_no_documents_is_an_issue(tmp_path: Path) -> None:
    assert _only(tmp_path, "# nothing here\n---\n---\n")[2] == "no spec documents found"


def test_directory_is_read_recursively_sorted_and_once(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "2.yml").write_text(TENANT.replace("acme", "two"))
    (tmp_path / "a.yaml").write_text(TENANT.replace("acme", "one"))
    (tmp_path / "c.yaml").write_text(TENANT.replace("acme", "three"))
    (tmp_path / ".hidden" / "x.yaml").write_text("not: [valid")
    (tmp_path / "skip.json").write_text("{")
    specs = load_specs([tmp_path, tmp_path / "a.yaml"])
    assert [doc.name for doc in specs.documents] == ["one", "two", "three"]
    assert specs.files == sorted(
        [tmp_path / "a.yaml", tmp_path / "b" / "2.yml", tmp_path / "c.yaml"]
    )
    assert specs.documents[1].location == Location(str(tmp_path / "b" / "2.yml"), 1, 1)
    assert specs.documents[1].source_dir == (tmp_path / "b").resolve()


def test_file_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_module, "MAX_FILE_BYTES", 100)
    line, col, message = _only(tmp_path, TENANT + "#" * 200)
    assert (line, col) == (0, 0)
    assert message.startswith("file is larger than")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    (path / "inner.yaml").write_text(TENANT)
    assert [d.name for d in load_specs([path]).documents] == ["acme"]  # a directory named *.yaml


# -- encodings -------------------------------------------------------------------------------
def test_non_utf8_bytes(tmp_path: Path) -> None:
    data = TENANT.encode() + b"spec: {plan: caf\xe9}\n"
    assert _only(tmp_path, data) == (4, 17, "file is not valid UTF-8 (byte 0xe9); save it as UTF-8")


def test_nul_byte(tmp_path: Path) -> None:
    assert _only(tmp_path, b"apiVersion: penguinctl/v1\nkind: Ten\x00ant\n")[:2] == (2, 10)


def test_utf16_file(tmp_path: Path) -> None:
    assert _only(tmp_path, TENANT.encode("utf-16")) == (
        1,
        1,
        "file is UTF-16-encoded; save it as UTF-8",
    )


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + TENANT.encode())
    assert load_specs([path]).tenants["acme"].location == Location(str(path), 1, 1)


def test_control_character(tmp_path: Path) -> None:
    line, col, message = _only(tmp_path, TENANT + "spec: {plan: \x07}\n")
    assert (line, col) == (4, 14)
    assert "U+0007" in message


# -- YAML structure ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a: [1, 2\n", (2, 1), "did not find expected ',' or ']'"),
        ("a: 'open\n", (2, 1), "found unexpected end of stream"),
        ("a: b: c\n", (1, 5), "mapping values are not allowed in this context"),
        ("a:\n  - 1\n b: 2\n", (3, 2), "did not find expected key"),
        ("a: !!python/name:os.system x\n", (1, 4), "unsupported YAML tag '!!python/name"),
        ("a: !!python/object:__main__.X {}\n", (1, 4), "unsupported YAML tag '!!python/object"),
        ("a: !!binary aGVsbG8=\n", (1, 4), "unsupported YAML tag '!!binary'"),
        ("a: !!set {x}\n", (1, 4), "unsupported YAML tag '!!set'"),
        ("a: !!int nope\n", (1, 4), "this value is not a valid int"),
        ("a: &x [1, *x]\n", (1, 11), "alias '*x' refers to itself"),
        ("a: " + "9" * 5000 + "\n", (1, 4), "this value is not a valid int"),
        ("[a, b]: 1\n", (1, 1), "a mapping key must be a plain string"),
        ("<<: 5\n", (1, 1), "'<<' takes a mapping or a list of mappings"),
        ("just text\n", (1, 1), "a document must be a mapping"),
        ("- a\n", (1, 1), "a document must be a mapping"),
        ('""\n', (1, 1), "a document must be a mapping"),
    ],
    ids=lambda value: value[:30] if isinstance(value, str) else None,
)
def test_yaml_problems(text: str, where: tuple[int, int], message: str) -> None:
    line, col, got = _parsed(text)
    assert (line, col) == where
    assert message in got


def test_python_object_tag_is_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = TENANT + f'spec: {{plan: !!python/object/apply:os.system ["touch {marker}"]}}\n'
    line, col, message = _only(tmp_path, text)
    assert (line, col) == (4, 14)
    assert message.startswith("unsupported YAML tag '!!python/object/apply:os.system'")
    assert not marker.exists()


def test_merge_keys_and_aliases() -> None:
    text = (
        b"base: &base {x: 1, y: 2}\n"
        b"other: &other {z: 3, y: 9}\n"
        b"m: {<<: [*base, *other], y: 5}\n"
        b"plain: *base\n"
    )
    parsed = parse_bytes("f.yaml", text)
    assert not parsed.issues
    (doc,) = parsed.documents
    assert dict(doc["m"]) == {"y": 5, "x": 1, "z": 3}
    assert doc["m"].key_location("x") == Location("f.yaml", 1, 14)  # where x is written
    assert doc["plain"] is doc["base"]  # aliases are shared, not copied


def test_scalars_follow_yaml_1_1() -> None:
    text = b"i: 0x1F\nf: 1.5\nb: yes\nn: ~\nd: 2024-06-01\ns: '010'\nv: 2024.06\nk: 1_000\n"
    (doc,) = parse_bytes("f.yaml", text).documents
    assert dict(doc) == {
        "i": 31,
        "f": 1.5,
        "b": True,
        "n": None,
        "d": "2024-06-01",  # dates stay text
        "s": "010",
        "v": 2024.06,
        "k": 1000,
    }


def test_positions_are_kept() -> None:
    text = b"a: 1\nlist:\n  - x\n  - {k: v}\n"
    (doc,) = parse_bytes("f.yaml", text).documents
    assert isinstance(doc, YamlMap)
    assert doc.location == Location("f.yaml", 1, 1)
    assert doc.key_location("list") == Location("f.yaml", 2, 1)
    items = doc["list"]
    assert isinstance(items, YamlList)
    assert items.item_location(1) == Location("f.yaml", 4, 5)
    assert items[1].key_location("k") == Location("f.yaml", 4, 6)


def test_duplicate_key_keeps_first_value() -> None:
    parsed = parse_bytes("f.yaml", b"a: 1\nb: 2\na: 3\n")
    assert [str(i) for i in parsed.issues] == [
        "f.yaml:3:1: duplicate key 'a' (first defined at line 1); remove one of them"
    ]
    assert dict(parsed.documents[0]) == {"a": 1, "b": 2}


def test_documents_before_a_syntax_error_are_still_validated(tmp_path: Path) -> None:
    text = TENANT + "spec: {plan: Pro!}\n---\nkind: [\n"
    issues = _issues(tmp_path, text)
    assert [(i.location.line, i.location.col) for i in issues] == [(4, 8), (7, 1)]
    assert "spec.plan" in issues[0].message


# -- hostile input -----------------------------------------------------------------------------
def test_billion_laughs(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 20):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    line, _, message = _only(tmp_path, "\n".join(lines) + "\n")
    assert line == 7  # 10**6 nodes after six levels
    assert message.startswith("more than 2,000,000 YAML nodes in this file")


def test_huge_anchor_used_many_times(tmp_path: Path) -> None:
    big = "[" + ", ".join(["x"] * 300_000) + "]"
    text = f"a: &big {big}\n" + "".join(f"b{i}: *big\n" for i in range(10))
    line, col, message = _only(tmp_path, text)
    assert (line, col) == (7, 5)
    assert "YAML nodes" in message


def test_node_cap_counts_plain_nodes_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlread, "MAX_NODES", 50)
    text = "---\n".join([TENANT] * 20)
    assert "more than 50 YAML nodes" in _only(tmp_path, text)[2]


@pytest.mark.parametrize("depth", [101, 1_000_000])
def test_deep_flow_nesting(tmp_path: Path, depth: int) -> None:
    # libyaml's own composer crashes the interpreter at about 100,000 levels; ours must not.
    # The document's mapping is level 1, so the 100th bracket is one level too deep. The
    # libyaml bundled with PyYAML 6.0.4 scans ahead and stops by itself at 1,000 levels, before
    # our builder sees the 101st: the same message then points at the 1,000th bracket.
    line, col, message = _only(tmp_path, "a: " + "[" * depth + "]" * depth + "\n")
    assert (line, col) in ((1, 103), (1, 1003))
    assert message == "nesting deeper than 100 levels; flatten it"


def test_deep_block_nesting(tmp_path: Path) -> None:
    text = "".join(" " * level + f"k{level}:\n" for level in range(150)) + " " * 150 + "v\n"
    line, _, message = _only(tmp_path, text)
    assert line == 101
    assert message.startswith("nesting deeper than 100")


def test_deep_nesting_through_aliases(tmp_path: Path) -> None:
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 150))
    assert _only(tmp_path, text)[2].startswith("nesting deeper than 100")


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: penguinctl/v1\nkind: Domain\nmetadata: acme\nspec: [1, 2]\n",
        "apiVersion: 1\nkind: Server\nmetadata: {name: [x]}\nspec: {provider: {a: 1}}\n",
        "apiVersion: penguinctl/v1\nkind: [Domain]\n",
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: ~}\nspec: ~\n",
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: 1e400, labels: {a: [b]}}\n",
    ],
)
def test_wrong_types_are_issues(tmp_path: Path, text: str) -> None:
    issues = _issues(tmp_path, text)
    assert issues
    assert all(issue.location.line > 0 for issue in issues)
