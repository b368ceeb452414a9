"""The tenant registry row: where a tenant's database, Temporal namespace and keys live."""

from __future__ import annotations

import re

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, ControlBase

TENANT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class Tenant(Audited, ControlBase):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(31), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    db_name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    namespace: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    keys_dir: Mapped[str] = mapped_column(String(1000), nullable=False)
