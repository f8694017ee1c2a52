"""Typed SQLAlchemy models, one module per aggregate; imported here so Alembic sees them all."""

from crm.models.api_token import ApiToken
from crm.models.callback import CallBack, CallReason
from crm.models.customer import (
    Behaviour,
    Channel,
    Consent,
    Contact,
    ContactKind,
    Customer,
    Gender,
    Lapse,
    LeaveReason,
    SearchTerm,
    Stage,
    Status,
)
from crm.models.import_run import ImportKind, ImportRun, ImportState
from crm.models.interaction import Interaction, Kind
from crm.models.order import Order, OrderStatus
from crm.models.segment import RfmCell, Segment, TeamSetting
from crm.models.sequence import (
    Enrolment,
    EnrolmentRule,
    EnrolmentState,
    Message,
    MessageState,
    Sequence,
    SequenceStep,
    StepChannel,
    Trigger,
)
from crm.models.summary import BaseDay, CohortMonth, ReactivationDay, RepeatDay, SalesDay, SegmentSalesDay
from crm.models.user import Role, User

__all__ = [
    "ApiToken",
    "BaseDay",
    "Behaviour",
    "CallBack",
    "CallReason",
    "Channel",
    "CohortMonth",
    "Consent",
    "Contact",
    "ContactKind",
    "Customer",
    "Enrolment",
    "EnrolmentRule",
    "EnrolmentState",
    "Gender",
    "ImportKind",
    "ImportRun",
    "ImportState",
    "Interaction",
    "Kind",
    "Lapse",
    "LeaveReason",
    "Message",
    "MessageState",
    "Order",
    "OrderStatus",
    "ReactivationDay",
    "RepeatDay",
    "RfmCell",
    "Role",
    "SalesDay",
    "SearchTerm",
    "Segment",
    "SegmentSalesDay",
    "Sequence",
    "SequenceStep",
    "Stage",
    "Status",
    "StepChannel",
    "TeamSetting",
    "Trigger",
    "User",
]
