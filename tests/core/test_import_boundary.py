"""The core imports only torch and the standard library."""
import ast
import pathlib
import sys

CORE = pathlib.Path(__file__).resolve().parents[2] / "model_sampling_flow"


def imported_top_level_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0], node.lineno


def test_core_imports_only_torch_and_stdlib():
    allowed = set(sys.stdlib_module_names) | {"torch", "model_sampling_flow"}
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 8, files
    offenders = [f"{path.name}:{line} imports {name}" for path in files
                 for name, line in imported_top_level_modules(path) if name not in allowed]
    assert offenders == []
