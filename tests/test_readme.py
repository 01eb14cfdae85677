"""Every ```python block of README.md runs.

Blocks are grouped by the README section that holds them (`<!-- section:NAME -->` markers; blocks
outside any section form the group "top"). The blocks of one group run in order, with exec, in one
fresh namespace and a fresh temporary working directory, so a later block of a section may use
what an earlier one defined or wrote. Groups never share state: each is its own test, and the
autouse fixture of conftest.py resets alert configuration, environment keys and InMemoryCache.
A block opts out only with a `<!-- no-test -->` line right before its fence (blank lines allowed);
the library, cli and alerts sections must not use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import cache_utils

README = Path(__file__).resolve().parent.parent / "README.md"
NO_TEST = "<!-- no-test -->"
OWN_SECTIONS = ("library", "cli", "alerts")
_SECTION = re.compile(r"^<!-- (/?)section:([\w-]+) -->\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


@dataclass
class Block:
    section: str
    line: int  # 1-based line of the opening fence
    code: str
    skipped: bool


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block tagged `python` (also when indented in a list), with its section."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section = "top"
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _SECTION.match(line)
        if marker:
            section = "top" if marker.group(1) else marker.group(2)
        fence = _FENCE.match(line)
        if fence:
            indent, ticks, lang = fence.groups()
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(ticks):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            if lang == "python":
                k = i - 1
                while k >= 0 and not lines[k].strip():
                    k -= 1
                skipped = k >= 0 and lines[k].strip() == NO_TEST
                blocks.append(Block(section, i + 1, "\n".join(body) + "\n", skipped))
            i = j + 1
            continue
        i += 1
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
GROUPS: dict[str, list[Block]] = {}
for _block in BLOCKS:
    GROUPS.setdefault(_block.section, []).append(_block)


@pytest.mark.parametrize("section", sorted(GROUPS))
def test_readme_section_runs(
    section: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    namespace: dict[str, object] = {"__name__": f"readme_{section}"}
    ran = 0
    for block in GROUPS[section]:
        if block.skipped:
            continue
        try:
            # dont_inherit: this module's `from __future__ import annotations` must not leak into
            # the examples (it turns Dagster's context annotations into strings it rejects).
            code = compile(block.code, f"README.md:{block.line}", "exec", dont_inherit=True)
            exec(code, namespace)  # noqa: S102
        except BaseException as e:
            out = capsys.readouterr()
            raise AssertionError(
                f"README.md block at line {block.line} (section {section}) failed: "
                f"{type(e).__name__}: {e}\n--- stdout ---\n{out.out}\n--- stderr ---\n{out.err}"
            ) from e
        ran += 1
    assert ran > 0 or all(b.skipped for b in GROUPS[section])


def test_own_sections_have_runnable_examples_and_no_opt_outs() -> None:
    for section in OWN_SECTIONS:
        assert GROUPS.get(section), f"section {section} has no python examples"
        assert not any(b.skipped for b in GROUPS[section]), f"section {section} opts a block out"


def test_every_public_name_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    documented = "\n".join(
        text[text.index(f"<!-- section:{s} -->"): text.index(f"<!-- /section:{s} -->")]
        for s in OWN_SECTIONS
    )
    missing = [name for name in cache_utils.__all__ if not re.search(rf"\b{re.escape(name)}\b", documented)]
    assert missing == []


def test_parser_finds_indented_blocks_and_opt_outs() -> None:
    text = (
        "<!-- section:x -->\n```python\na = 1\n```\n- item\n\n  ```python\n  b = a\n  ```\n"
        "<!-- no-test -->\n\n```python\nraise SystemExit\n```\n<!-- /section:x -->\n"
        "```bash\nls\n```\n```python\nc = 3\n```\n"
    )
    blocks = parse_blocks(text)
    assert [(b.section, b.code, b.skipped) for b in blocks] == [
        ("x", "a = 1\n", False),
        ("x", "b = a\n", False),
        ("x", "raise SystemExit\n", True),
        ("top", "c = 3\n", False),
    ]
