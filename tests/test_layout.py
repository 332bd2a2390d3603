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


# ----------------------------------------------------------------------------------------- package faces
#: ``__init__.py`` files that still hold logic, with what is left in them. Strict: once one is cleaned up its
#: test passes, fails as XPASS, and the entry must go.
LOGIC_LEFT: dict[str, str] = {}


def _logic_in(source: str) -> list[str]:
    """Top-level statements of an ``__init__.py`` that are more than its face: anything but the docstring,
    imports, ``__all__`` / ``__version__`` and one stage entry ``def run``."""
    found, runs = [], 0
    for i, node in enumerate(ast.parse(source).body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in targets):
                continue
        if isinstance(node, ast.FunctionDef) and node.name == "run" and not runs:
            runs += 1
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0][:60]}")
    return found


@pytest.mark.parametrize("source, ok", [
    ('"""Doc."""\nfrom .stage import run, score\n__all__ = ["run", "score"]\n__version__ = "1"\n', True),
    ("from . import stage\n\ndef run(cfg, *, progress=True):\n    return stage.go(cfg)\n", True),
    ("def run(cfg):\n    pass\n\ndef run(cfg):\n    pass\n", False),  # a second entry
    ("def score(script, cfg):\n    pass\n", False),
    ("class Result:\n    pass\n", False),
    ("COLUMNS = ['a']\n", False),
    ("import matplotlib\nmatplotlib.rcParams.update({})\n", False),  # work done at import time
], ids=["re-exports", "stage-entry", "second-entry", "function", "class", "constant", "import-time-work"])
def test_the_face_rule_accepts_re_exports_only(source, ok):
    assert (not _logic_in(source)) is ok


@pytest.mark.parametrize("package", [
    pytest.param(name, id=name or "echoscript_utils",
                 marks=[pytest.mark.xfail(strict=True, reason=f"still holds {LOGIC_LEFT[name]}")] if name in LOGIC_LEFT
                 else [])
    for name in sorted(m for m, p in MODS.items() if p.name == "__init__.py")
])
def test_package_faces_only_re_export(package):
    """audiocraft's way: a package's ``__init__.py`` re-exports what its modules define (and may hold the stage
    entry ``run``); the logic lives in modules named by their job."""
    assert not _logic_in(MODS[package].read_text(encoding="utf-8")), f"{MODS[package]} holds logic"
