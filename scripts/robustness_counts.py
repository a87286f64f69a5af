"""A pytest plugin that counts what the robustness tests exercise: the numbers of README's "Robustness".

    PYTHONPATH=scripts .venv/bin/python -m pytest -p robustness_counts -q tests/test_robustness.py ...
    (add --robustness-list to print every refused input)

At the end of the run it prints:

- bad inputs refused: the distinct (file name, problem) pairs of every :class:`~astrocnn.core.errors.InputError`
  (how astrocnn refuses a file, folder, value or argument, with one line naming it) that astrocnn's own code
  raised while a test that is neither a hypothesis test nor a fuzz test ran; a bad file that several tests
  feed in counts once;
- fuzz/property examples: the passing examples hypothesis ran (calls of a ``@given`` test's body that
  returned), and the damaged files of ``tests/test_robustness.py::_fuzz``;
- write failures: the distinct (file name, problem) pairs of every :class:`~astrocnn.core.errors.OutputError`
  astrocnn raised (disk full, file-size limit, ...; those in child processes are not seen);
- resumed runs: prepare runs that found finished parts of an interrupted run and continued from them;
- the tests that passed, failed and were skipped.

Nothing is counted by hand and nothing in the tests or the package changes: the plugin wraps
``InputError.__init__``, ``OutputError.__init__``, ``Parts.__enter__``, each hypothesis test's
``.hypothesis.inner_test`` and the ``_fuzz`` helper.
"""
from __future__ import annotations

import os
import re
import sys
from collections import Counter

import pytest

_state: dict = {"node": None, "fuzz": False}
_refused: dict[tuple[str, str], set[str]] = {}
_write_failures: dict[int, tuple] = {}  # id -> (error, (file, problem), test)
_resumed: Counter = Counter()
_examples: Counter = Counter()
_fuzz_files: Counter = Counter()
_outcomes: Counter = Counter()
_ABS_PATH = re.compile(r"/[^\s:'\"()]+/([^/\s:'\"()]+)")


def pytest_addoption(parser):
    parser.addoption("--robustness-list", action="store_true", help="print every distinct refused input")


def pytest_configure(config):
    from astrocnn import errors

    original = errors.InputError.__init__
    if getattr(original, "_counting", False):
        return

    def init(self, path, problem):
        original(self, path, problem)
        # only refusals made by astrocnn itself (not errors a test builds, nor ones rebuilt by unpickling)
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if _state["node"] is not None and not _state["fuzz"] and caller.startswith("astrocnn"):
            name = os.path.basename(os.fspath(path)) if path is not None else ""
            key = (name, _ABS_PATH.sub(r"\1", str(problem)))
            _refused.setdefault(key, set()).add(_state["node"])

    init._counting = True  # type: ignore[attr-defined]
    errors.InputError.__init__ = init

    original_out = errors.OutputError.__init__

    def init_out(self, *args):
        original_out(self, *args)
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if _state["node"] is not None and caller.startswith("astrocnn"):
            # an error made while handling another (a part's failure told as the output's) replaces it
            handling = sys.exc_info()[1]
            if handling is not None and id(handling) in _write_failures:
                del _write_failures[id(handling)]
            text = str(args[0]) if args else ""
            where, _, problem = text.partition(": ")
            _write_failures[id(self)] = (self, (os.path.basename(where), _ABS_PATH.sub(r"\1", problem)),
                                         _state["node"])

    errors.OutputError.__init__ = init_out

    from astrocnn.core import parts

    original_enter = parts.Parts.__enter__

    def enter(self):
        out = original_enter(self)
        if self.done and not self.up_to_date and _state["node"] is not None:
            _resumed[_state["node"]] += 1
        return out

    parts.Parts.__enter__ = enter


def _is_fuzz(item) -> bool:
    fn = getattr(item, "obj", None)
    return getattr(fn, "hypothesis", None) is not None or "fuzz" in item.name


def pytest_collection_modifyitems(items):
    wrapped = set()
    for item in items:
        fn = getattr(item, "obj", None)
        handle = getattr(fn, "hypothesis", None)
        if handle is not None and id(fn) not in wrapped:
            wrapped.add(id(fn))
            inner = handle.inner_test

            def counting(*args, __inner=inner, **kwargs):
                out = __inner(*args, **kwargs)
                _examples[_state["node"]] += 1  # a passing example (draws hypothesis throws away raise)
                return out

            handle.inner_test = counting
        module = getattr(item, "module", None)
        fuzz = getattr(module, "_fuzz", None)
        if callable(fuzz) and not getattr(fuzz, "_counting", False):
            def counting_fuzz(*args, __fuzz=fuzz, **kwargs):
                cases, rejected = __fuzz(*args, **kwargs)
                _fuzz_files[_state["node"]] += cases
                return cases, rejected

            counting_fuzz._counting = True  # type: ignore[attr-defined]
            module._fuzz = counting_fuzz


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _state["node"], _state["fuzz"] = item.nodeid, _is_fuzz(item)
    yield
    _state["node"], _state["fuzz"] = None, False


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    tests = sorted({t for nodes in _refused.values() for t in nodes})
    tr.section("robustness counts (scripts/robustness_counts.py)")
    tr.line(f"bad inputs refused with a one-line message: {len(_refused)} distinct (file, problem) "
            f"in {len(tests)} tests")
    tr.line(f"fuzz/property examples: {sum(_examples.values())} hypothesis examples in {len(_examples)} tests, "
            f"{sum(_fuzz_files.values())} damaged files in {len(_fuzz_files)} fuzz tests")
    writes: dict[tuple[str, str], set[str]] = {}
    for _, key, node in _write_failures.values():
        writes.setdefault(key, set()).add(node)
    wtests = {t for nodes in writes.values() for t in nodes}
    tr.line(f"outputs refused or failed, reported as one line (OutputError): {len(writes)} distinct (file, problem) "
            f"in {len(wtests)} tests (those in child processes are not seen here)")
    tr.line(f"runs that resumed from the parts of an interrupted run: {sum(_resumed.values())} in {len(_resumed)} tests")
    tr.line(f"tests: {_outcomes['passed']} passed, {_outcomes['failed']} failed, {_outcomes['skipped']} skipped")
    if config.getoption("--robustness-list"):
        for node, n in sorted(_examples.items()):
            tr.line(f"  {n:5d} hypothesis examples  {node}")
        for node, n in sorted(_fuzz_files.items()):
            tr.line(f"  {n:5d} damaged files        {node}")
        for (name, problem), nodes in sorted(_refused.items()):
            tr.line(f"  refused  {name or '-'}: {problem}    [{len(nodes)} tests]")
        for (name, problem), nodes in sorted(writes.items()):
            tr.line(f"  write    {name or '-'}: {problem}    [{len(nodes)} tests]")
        for node, n in sorted(_resumed.items()):
            tr.line(f"  {n:5d} resumed runs   {node}")
