"""The order the suite runs in (tests/conftest.py): the slow modules first, each module's tests together.

`make test` hands whole modules to its pytest-xdist processes in this order, so a slow module left for the end
would keep one process busy alone while the other has finished.
"""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import slow_modules_first


def _item(module: str, slow: bool) -> SimpleNamespace:
    return SimpleNamespace(
        name=f"{module}-{slow}",
        module=SimpleNamespace(__name__=module),
        get_closest_marker=lambda name: object() if slow and name == "slow" else None,
    )


def test_a_module_with_one_slow_test_moves_first_whole_and_in_order():
    items = [_item("a", False), _item("b", False), _item("b", True), _item("b", False), _item("c", True)]
    ordered = slow_modules_first(items)
    assert [(i.module.__name__, i.name) for i in ordered] == [
        ("b", "b-False"),
        ("b", "b-True"),
        ("b", "b-False"),
        ("c", "c-True"),
        ("a", "a-False"),
    ]
    assert [i.name for i in ordered[:3]] == [items[1].name, items[2].name, items[3].name]  # b's own order


def test_this_session_runs_the_slow_modules_first(request):
    """The collection this run uses: once a module without a slow test has started, none with one follows."""
    items = [item for item in request.session.items if item.module is not None]
    modules = [item.module.__name__ for item in items]
    starts = [m for i, m in enumerate(modules) if i == 0 or modules[i - 1] != m]
    assert len(starts) == len(set(starts)), "a module's tests are split"
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    flags = [m in slow for m in starts]
    assert flags == sorted(flags, reverse=True), starts
