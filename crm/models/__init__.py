"""Typed SQLAlchemy models, one module per aggregate; imported here so Alembic sees them all."""

from crm.models.api_token import ApiToken
from crm.models.customer import (
    Channel,
    Consent,
    Contact,
    ContactKind,
    Customer,
    Gender,
    LeaveReason,
    SearchTerm,
    Stage,
    Status,
)
from crm.models.import_run import ImportKind, ImportRun, ImportState
from crm.models.interaction import Interaction, Kind
from crm.models.order import Order, OrderStatus
from crm.models.user import Role, User

__all__ = [
    "ApiToken",
    "Channel",
    "Consent",
    "Contact",
    "ContactKind",
    "Customer",
    "Gender",
    "ImportKind",
    "ImportRun",
    "ImportState",
    "Interaction",
    "Kind",
    "LeaveReason",
    "Order",
    "OrderStatus",
    "Role",
    "SearchTerm",
    "Stage",
    "Status",
    "User",
]
