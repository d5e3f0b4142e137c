"""Every bench script imports: the benches are commands nobody runs in CI, so a module they import that moves
would otherwise break them silently (surrogate_study and async_schedule did)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if p.name != "__init__.py"))
def test_the_bench_script_imports(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"bench_{script[:-3]}"
    spec = importlib.util.spec_from_file_location(name, BENCH / script)
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up by name while the class is built.
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    if "__main__" in (BENCH / script).read_text():
        assert callable(getattr(module, "main", None)), f"bench/{script} runs as a command but has no main()"
