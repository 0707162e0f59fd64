"""The layering of src/superpose, read from the code with ``ast``: no import cycle, nothing below the
command layer imports it, and no module outside backends/ reaches into a backend's private attributes.

Every import counts, a function-level (lazy) one too: a cycle hidden in a function is still two
modules that cannot be understood one without the other.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "superpose"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# Every module parsed once, at collection, before any test starts a thread: CPython 3.11 keeps the AST
# builder's recursion depth per interpreter, so ast.parse while another thread runs Python can fail
# with "AST constructor recursion depth mismatch" (seen when a test's server thread was still busy).
TREES = {path: ast.parse(path.read_text(encoding="utf-8")) for path in MODULES.values()}


def _target(name: str) -> str | None:
    """The module of ``superpose`` that ``name`` (a module, or a module's attribute) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """Modules of superpose that ``module`` imports, anywhere in its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(TREES[path]):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        found |= {t for n in names if n.startswith("superpose") and (t := _target(n)) and t != module}
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _cycle() -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_walk_sees_the_imports():
    # A check that reads nothing passes trivially: the known edges must be there.
    assert "superpose.experiments.probe" in GRAPH["superpose.cli.run"]
    assert "superpose.backends" in GRAPH["superpose.experiments.probe"]
    assert "superpose.cli" in GRAPH["superpose.cli.reproduce"]  # a lazy or top-level import alike


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_nothing_below_the_command_layer_imports_it():
    below = {m: sorted(n for n in imports if n == "superpose.cli" or n.startswith("superpose.cli."))
             for m, imports in GRAPH.items() if not (m == "superpose.cli" or m.startswith("superpose.cli."))}
    assert {m: v for m, v in below.items() if v} == {}


def test_only_the_command_layer_parses_arguments():
    parsers = [m for m, p in MODULES.items() if "argparse" in p.read_text(encoding="utf-8")
               and not (m == "superpose.cli" or m.startswith("superpose.cli."))]
    assert parsers == []


# The layers of docs/architecture.md, bottom (0) to top: a module imports from its layer or below.
# The most specific prefix decides (vectors/config.py is an experiment's config, vectors/ a mechanism;
# experiments/base.py, the runs' shared header and opener, sits below the kinds so training's recipe is on it).
LAYERS = {
    "superpose.errors": 0, "superpose.files": 0, "superpose.progress": 0,
    "superpose.tasks": 1, "superpose.prompts": 1, "superpose.metrics": 1, "superpose.stats": 1, "superpose.runs": 1, "superpose.config": 1,
    "superpose.display": 1,
    "superpose.models": 2,
    "superpose.backends": 3, "superpose.naive": 3,
    "superpose.vectors": 4, "superpose.construction": 4, "superpose.scratch": 4, "superpose.enumerate": 4,
    "superpose.mechanism": 4, "superpose.experiments.base": 4,
    "superpose.experiments": 5, "superpose.vectors.config": 5, "superpose.notebook": 5,
    "superpose.report": 6, "superpose.explore": 6,
    "superpose.cli": 7, "superpose.__init__": 7,
}
# Upward imports kept on purpose, each lazy inside the one function that needs it (docs/architecture.md): none.
UPWARD: set[tuple[str, str]] = set()


def _layer(module: str) -> int:
    path = MODULES[module]
    key = module + ".__init__" if path.name == "__init__.py" else module
    while key not in LAYERS:
        key = key.rpartition(".")[0]
    return LAYERS[key]


def test_every_import_goes_down_the_layers():
    upward = sorted((m, n) for m, imports in GRAPH.items() for n in imports if _layer(n) > _layer(m))
    assert upward == sorted(UPWARD)


def _backend_private_names() -> set[str]:
    """Underscore-prefixed names that backends/ defines on its classes or objects (methods, attributes)."""
    names = set()
    for path in (PACKAGE / "backends").rglob("*.py"):
        for node in ast.walk(TREES[path]):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        names |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def test_no_module_outside_backends_touches_a_backends_private_attributes():
    private = _backend_private_names()
    assert "_logprobs" in private  # the scan found the transformers backend's own helpers
    offences = []
    for module, path in MODULES.items():
        if module.startswith("superpose.backends"):
            continue
        for node in ast.walk(TREES[path]):
            if isinstance(node, ast.Attribute) and node.attr in private and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                offences.append(f"{path.relative_to(SRC)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("superpose.backends"):
                offences += [f"{path.relative_to(SRC)}:{node.lineno}: imports {a.name}"
                             for a in node.names if a.name.startswith("_")]
    assert offences == []


# --- the run contract (docs/architecture.md): one entry point of one shape per kind ------------------

# Each kind of run and the module of its runner ``run_<kind>``; training's joins with its own runner.
RUNNERS = {"probe": "superpose.experiments.probe", "sweep": "superpose.experiments.sweep",
           "scale": "superpose.experiments.scale", "vectors": "superpose.experiments.vectors",
           "construct": "superpose.experiments.construct", "mechanism": "superpose.experiments.mechanism",
           "train": "superpose.experiments.train"}
# (name, kind, default) of every runner's parameters; "required" for the config.
CONTRACT = [("config", "POSITIONAL_OR_KEYWORD", "required"), ("root", "KEYWORD_ONLY", "any"),
            ("resume", "KEYWORD_ONLY", None), ("backend", "KEYWORD_ONLY", None), ("progress", "KEYWORD_ONLY", True)]


def test_every_kind_has_one_runner_of_the_one_signature():
    import importlib
    import inspect

    from superpose.runs import KINDS

    assert set(RUNNERS) <= set(KINDS)
    for kind, module in RUNNERS.items():
        params = inspect.signature(getattr(importlib.import_module(module), f"run_{kind}")).parameters.values()
        shape = [(p.name, p.kind.name, "required" if p.default is p.empty else
                  "any" if p.name == "root" else p.default) for p in params]
        assert shape == CONTRACT, (kind, shape)
    # a new runner in experiments/ is a new kind: it joins RUNNERS (and so the contract)
    found = {node.name for m, path in MODULES.items() if m.startswith("superpose.experiments.")
             for node in TREES[path].body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("run_")}
    assert found == {f"run_{k}" for k in RUNNERS}


def _calls(fn: ast.FunctionDef) -> set[str]:
    """Names of the functions ``fn`` calls (``f(...)`` and ``x.f(...)``)."""
    return {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(fn)
            if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}


def test_every_runner_opens_its_folder_through_open_run():
    for kind, module in RUNNERS.items():
        tree = TREES[MODULES[module]]
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        reached, todo = set(), [f"run_{kind}"]
        while todo:  # the runner and the functions of its own module that it calls
            name = todo.pop()
            if name in functions and name not in reached:
                reached.add(name)
                todo += _calls(functions[name])
        assert any("open_run" in _calls(functions[f]) for f in reached), kind
    # and only open_run makes an experiment's folder
    makers = [m for m, path in MODULES.items() if m.startswith("superpose.experiments.") and m != "superpose.experiments.base"
              and "RunFolder.create" in path.read_text(encoding="utf-8")]
    assert makers == []


# --- backends: capabilities, not a class; no console output; no silenced type checks -----------------

def _annotations(tree: ast.AST):
    """Every annotation in a module: arguments, returns, annotated assignments."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    yield a.annotation
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def _names(annotation: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
            out |= set(node.value.replace("[", " ").replace("]", " ").replace("|", " ").replace(",", " ").split())
    return out


def test_code_outside_backends_is_typed_against_capabilities_not_hfbackend():
    """enumerate, the oracle, vectors, mechanism and the explorer name a Protocol of backends/base.py."""
    offences = [f"{path.relative_to(SRC)}:{ann.lineno}" for module, path in MODULES.items()
                if not module.startswith("superpose.backends")
                for ann in _annotations(TREES[path]) if "HFBackend" in _names(ann)]
    assert offences == []
    uses = [m for m, p in MODULES.items() if "Enumerating" in p.read_text(encoding="utf-8")]
    assert "superpose.enumerate" in uses  # the scan reads the modules it should


# The one exception, with its reason: training shares this warning and imports it from here for now.
PRINTS = {"superpose.backends.devices": "warn_bfloat16_on_cpu: the bfloat16-on-CPU line, shared with training"}


def test_no_backend_prints():
    """Backends return what they know (a message, a flag on the encoded request); experiments print it."""
    offences = []
    for module, path in MODULES.items():
        if not module.startswith("superpose.backends") or module in PRINTS:
            continue
        for node in ast.walk(TREES[path]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offences.append(f"{path.relative_to(SRC)}:{node.lineno}: print()")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "print", "write", "log") and isinstance(node.func.value, (ast.Name, ast.Attribute)) and (
                    ast.unparse(node.func.value) in ("console", "sys.stdout", "sys.stderr", "rich")):
                offences.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node.func)}()")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                offences += [f"{path.relative_to(SRC)}:{node.lineno}: imports {n}" for n in names
                             if n.startswith(("superpose.report", "rich", "tqdm"))]
    assert offences == []


# `# type: ignore` is a check switched off: each left is named here with why it stays.
TYPE_IGNORES = {
    "superpose/backends/entry.py": (1, "Literal[DTYPES]: a Literal built from a tuple, which checkers cannot read"),
    "superpose/experiments/probe.py": (1, "Models turns strings into ModelEntry; the annotation keeps the YAML shape"),
    "superpose/experiments/scale.py": (2, "the same Models annotation"),
    "superpose/cli/run.py": (1, "run_probe(None, resume=...): the config is optional only on resume"),
}


def test_type_ignores_are_few_and_named():
    found = {}
    for path in MODULES.values():
        n = path.read_text(encoding="utf-8").count("# type: ignore")
        if n:
            found[str(path.relative_to(SRC))] = n
    allowed = {f: n for f, (n, _) in TYPE_IGNORES.items()}
    assert {f: n for f, n in found.items() if n > allowed.get(f, 0)} == {}
