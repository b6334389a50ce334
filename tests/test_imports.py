"""The package's import graph has no cycles, function-level imports included."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

import grimp


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("landscape", exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert len(edges) > 50
    try:
        TopologicalSorter(edges).prepare()
    except CycleError as exc:  # pragma: no cover - the message names the cycle
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from exc
