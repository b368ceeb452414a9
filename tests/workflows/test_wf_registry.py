"""Workflows call activities and child workflows by symbol; these checks keep the names those
symbols stand for served: every activity a workflow names is registered by a worker (the main
worker or a head-end node), under its method's own name, and every process type has its workflow."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from typing import Any

from temporalio import activity, workflow

import workflows
from activities.gateway_commands import GatewayCommandActivities
from activities.registry import MAIN_WORKER_ACTIVITIES
from domain.processes.types import TYPES
from workflows.processes import PROCESS_WORKFLOWS
from workflows.registry import WORKFLOWS


def _activities_of(cls: type) -> dict[str, Any]:
    """Activity name -> method, for the methods of ``cls`` that are Temporal activities."""
    found = {}
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        defn = activity._Definition.from_callable(member)
        if defn is not None:
            found[defn.name or name] = member
    return found


def _used_by_workflows() -> dict[str, set[str]]:
    """Activity names each workflow module refers to (``Cls.method`` where the method is an activity)."""
    used: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(workflows.__path__):
        module = importlib.import_module(f"workflows.{info.name}")
        names = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                owner = getattr(module, node.value.id, None)
                member = getattr(owner, node.attr, None) if isinstance(owner, type) else None
                defn = activity._Definition.from_callable(member) if callable(member) else None
                if defn is not None and defn.name:
                    names.add(defn.name)
        used[info.name] = names
    return used


MAIN = {name for cls in MAIN_WORKER_ACTIVITIES for name in _activities_of(cls)}
HEADEND = set(_activities_of(GatewayCommandActivities))


def test_every_activity_a_workflow_names_is_registered_by_a_worker() -> None:
    used = _used_by_workflows()
    assert used["mass"] >= {"next_process_targets", "set_process_state", "cancel_pending_targets"}
    assert "measure_clock_offset" in used["time_sync"]
    missing = {module: names - MAIN - HEADEND for module, names in used.items() if names - MAIN - HEADEND}
    assert not missing, missing
    assert not MAIN & HEADEND, "an activity name served on two kinds of worker"


def test_activities_are_registered_under_their_method_names() -> None:
    for cls in (*MAIN_WORKER_ACTIVITIES, GatewayCommandActivities):
        for name, method in _activities_of(cls).items():
            assert name == method.__name__, f"{cls.__name__}.{method.__name__} is registered as {name!r}"


def test_every_process_type_has_its_workflow_and_the_worker_serves_it() -> None:
    assert set(PROCESS_WORKFLOWS) == set(TYPES)
    served = {workflow._Definition.must_from_class(cls).name for cls in WORKFLOWS}
    for name, spec in PROCESS_WORKFLOWS.items():
        defn = workflow._Definition.must_from_run_fn(spec.run)
        assert defn.name in served, f"the worker does not serve {defn.name} ({name})"
        assert "params" in inspect.signature(spec.input).parameters, name
