"""The import graph of the package follows its layers, has no cycles, and tools and
tests import the installed package without touching ``sys.path``.

Every ``import occwm...`` / ``from occwm... import`` statement of every module is read
with :mod:`ast`, wherever it stands (module level, inside functions, under
``TYPE_CHECKING``), as are ``importlib.import_module('occwm...')`` calls with a literal
name. A module belongs to a unit: ``core`` (the top-level modules of L0), ``warp``,
``motion`` and ``window`` (L1), or its subpackage.
"""
import ast
import os
import re
from typing import Dict, Iterator, List, Optional, Set, Tuple

from tests.conftest import REPO

# Who may import whom. A unit may always import itself; nothing else is allowed.
#   L0  core:          occwm/{__init__,compat,registry,runtime,grid,geometry,io}.py
#   L1  warp, motion, window:  occwm/warp.py, occwm/motion.py, occwm/window.py
#   L2  data side:     infos | data, occupancy, synthetic (each may read info pkls)
#   L3  models
#   L4  evaluation, visualization
#   L5  engine (hooks), scenarios
#   L6  api (the Python API: models, evaluation, visualization)
CORE = {'core'}
L1 = CORE | {'warp', 'motion', 'window'}
L2 = L1 | {'infos', 'data', 'occupancy', 'synthetic'}
ALLOWED: Dict[str, Set[str]] = {
    'core':          CORE,
    'warp':          L1,
    'motion':        L1,
    'window':        L1,
    'infos':         L1,
    'data':          L1 | {'infos'},
    'occupancy':     L1 | {'infos'},
    'synthetic':     L1 | {'infos'},
    'models':        L1,
    'evaluation':    L2,
    'visualization': L2,
    'engine':        L2 | {'models', 'evaluation', 'visualization'},
    'scenarios':     L2 | {'models', 'evaluation', 'visualization'},
    'api':           L2 | {'models', 'evaluation', 'visualization'},
}
CORE_MODULES = {'occwm', 'occwm.compat', 'occwm.registry', 'occwm.runtime', 'occwm.grid',
                'occwm.geometry', 'occwm.io'}

PACKAGE = os.path.join(REPO, 'occwm')


def module_files() -> Dict[str, str]:
    """``{dotted module name: file path}`` of every module under ``occwm/``."""
    out = {}
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for f in sorted(files):
            if f.endswith('.py'):
                path = os.path.join(root, f)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                out['.'.join(parts)] = path
    return out


MODULES = module_files()


def unit_of(module: str) -> Optional[str]:
    """The unit of a dotted ``occwm`` module name; None for a name that is no unit."""
    if module in CORE_MODULES:
        return 'core'
    parts = module.split('.')
    if len(parts) >= 2 and parts[1] in ALLOWED:
        return parts[1]
    return None


def resolve(name: str) -> str:
    """The longest existing module that ``name`` names or lies in (``occwm.a.b.func`` ->
    ``occwm.a.b``); a unit not yet on disk keeps its name (``occwm.warp``)."""
    parts = name.split('.')
    while len(parts) > 1 and '.'.join(parts) not in MODULES:
        parts.pop()
    if parts == ['occwm'] and name.count('.') >= 1 and name.split('.')[1] in ALLOWED:
        return '.'.join(name.split('.')[:2])
    return '.'.join(parts)


def imports_of(module: str, path: str) -> Iterator[Tuple[int, str]]:
    """``(line, imported occwm module)`` for every import of ``occwm`` in one file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] == 'occwm':
                    yield node.lineno, resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from .x import y
                anchor = package.split('.')
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = '.'.join(anchor + ([base] if base else []))
            if base.split('.')[0] != 'occwm':
                continue
            for alias in node.names:  # from occwm.a import b: b may be a module
                yield node.lineno, resolve(f'{base}.{alias.name}')
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.split('.')[0] == 'occwm'
              and getattr(node.func, 'attr', getattr(node.func, 'id', None))
              in ('import_module', '__import__')):
            yield node.lineno, resolve(node.args[0].value)


def import_graph() -> Dict[str, List[Tuple[int, str]]]:
    """``{module: [(line, imported module), ...]}`` over the whole package."""
    return {m: sorted(set(imports_of(m, p))) for m, p in MODULES.items()}


GRAPH = import_graph()


def rel(module: str) -> str:
    return os.path.relpath(MODULES[module], REPO)


def test_every_module_has_a_unit():
    assert 'occwm.models.forecaster' in GRAPH and 'occwm.grid' in GRAPH  # the walk found files
    bad = [rel(m) for m in MODULES if unit_of(m) is None]
    assert not bad, (f'modules outside every layer (add them to ALLOWED / CORE_MODULES in '
                     f'tests/test_layers.py): {bad}')


def test_layers():
    bad = []
    for module, edges in GRAPH.items():
        src = unit_of(module)
        for line, target in edges:
            dst = unit_of(target)
            if src is not None and dst is not None and dst not in ALLOWED[src] | {src}:
                bad.append(f'{rel(module)}:{line} imports {target} ({src} may not import {dst})')
    assert not bad, 'forbidden imports:\n  ' + '\n  '.join(bad)


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle (``[a, b, ..., a]``) per back edge found by a depth-first search."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in graph}
    stack: List[str] = []
    cycles = []

    def visit(m: str) -> None:
        colour[m] = GREY
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if colour.get(n, BLACK) == GREY:
                cycles.append(stack[stack.index(n):] + [n])
            elif colour.get(n) == WHITE:
                visit(n)
        stack.pop()
        colour[m] = BLACK

    for m in sorted(graph):
        if colour[m] == WHITE:
            visit(m)
    return cycles


def test_find_cycles():
    assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []
    assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == [['a', 'b', 'c', 'a']]
    assert find_cycles({'a': {'a'}}) == [['a', 'a']]


def test_no_import_cycles():
    # A package's __init__ re-exporting its modules is no cycle: a module importing the
    # package's name imports the __init__, which Python has already started.
    graph = {m: {t for _, t in edges if t != m} for m, edges in GRAPH.items()}
    lines = {(m, t): line for m, edges in GRAPH.items() for line, t in edges}
    cycles = find_cycles(graph)
    msg = ['  ' + ' -> '.join(f'{rel(a)}:{lines[a, b]}' for a, b in zip(c, c[1:])) + f' -> {rel(c[-1])}'
           for c in cycles]
    assert not cycles, 'import cycles (file:line of each import):\n' + '\n'.join(msg)


SYS_PATH_TEXT = re.compile(r'sys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\b|\[.*\]\s*=|\+?=(?!=))')


def edits_sys_path(path: str) -> List[int]:
    """Lines of one file that change ``sys.path`` (Python by ``ast``, other text by regex)."""
    with open(path, errors='replace') as f:
        text = f.read()
    if not path.endswith('.py'):
        return [i + 1 for i, line in enumerate(text.splitlines()) if SYS_PATH_TEXT.search(line)]

    def is_sys_path(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == 'path'
                and isinstance(node.value, ast.Name) and node.value.id == 'sys')

    lines = []
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and is_sys_path(node.func.value):
            lines.append(node.lineno)  # sys.path.insert(...), .append(...), ...
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = getattr(node, 'targets', None) or [getattr(node, 'target', None)]
            for t in targets:
                if is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)):
                    lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == 'sys' \
                and any(a.name == 'path' for a in node.names):
            lines.append(node.lineno)  # from sys import path
        elif isinstance(node, ast.Call) and getattr(node.func, 'attr', None) == 'addsitedir':
            lines.append(node.lineno)
    return sorted(lines)


def test_tools_and_tests_leave_sys_path_alone():
    bad = []
    for top in ('tools', 'tests'):
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for f in files:
                if f.endswith(('.py', '.sh')):
                    path = os.path.join(root, f)
                    bad += [f'{os.path.relpath(path, REPO)}:{n}' for n in edits_sys_path(path)]
    assert not bad, ('sys.path edited (install the package instead: pip install -e .):\n  '
                     + '\n  '.join(bad))
