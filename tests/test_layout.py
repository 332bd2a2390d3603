"""The package's house rules, read from its own imports (module level and inside functions alike)."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "echoscript_utils"
STAGE_MODULES = ("curation", "annotation", "alignment", "finetuning", "generation", "evaluation", "listening",
                 "scoring")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODS = _modules()


def _imports(name: str) -> set[str]:
    """Package modules that ``name`` imports anywhere in its source (relative or absolute)."""
    path = MODS[name]
    pkg = name.split(".") if name else []
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "echoscript_utils":
                target = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if sub in MODS else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "echoscript_utils":
                    found.add(alias.name.partition(".")[2])
    return {m for m in found if m in MODS and m != name and not name.startswith(m + ".") and m}


GRAPH = {m: _imports(m) for m in MODS}


def _stage(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in STAGE_MODULES else None


def test_no_import_circles():
    def reaches(a, b, seen):
        for d in GRAPH[a]:
            if d == b or (d not in seen and (seen.add(d) or reaches(d, b, seen))):
                return True
        return False

    circles = sorted({tuple(sorted((a, b))) for a in GRAPH for b in GRAPH[a] if reaches(b, a, set())})
    assert not circles


def test_stages_never_import_one_another():
    sideways = sorted((a, b) for a in GRAPH for b in GRAPH[a] if _stage(a) and _stage(b) and _stage(a) != _stage(b))
    assert not sideways


def test_only_the_entry_point_imports_the_cli():
    assert sorted(m for m in GRAPH if "cli" in GRAPH[m]) == ["__main__"]


@pytest.mark.parametrize("stage", STAGE_MODULES)
def test_every_stage_has_one_entry_function(stage):
    module = importlib.import_module(f"echoscript_utils.{stage}")
    params = inspect.signature(module.run).parameters
    assert list(params)[0] == "cfg" and params["progress"].kind is inspect.Parameter.KEYWORD_ONLY
