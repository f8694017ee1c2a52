"""The team's settings: segmentation (how lapse is judged, how RFM scores are cut, group names)
and call rules (the daily cap, the no-answer attempt limit and what follows it).

Each kind is stored as JSON in `team_settings` under its own key, read into a frozen dataclass
with defaults for anything missing, and validated as a whole before saving, so the rebuild and
the call-back queue never meet an unworkable combination (boundaries out of order, a lapsed
factor below the lapsing one, a cap of zero calls a day).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime

from flask import g
from flask_babel import lazy_gettext as _l

from crm import rfm
from crm.errors import FieldError
from crm.extensions import db
from crm.models import TeamSetting

KEY = "segmentation"

# Days without an order after which a customer with too few orders to have a cadence of their own
# is lapsing, then lapsed: what "usual" means depends on what the business sells.
BUSINESS_TYPES = {
    "daily": (_l("Daily (bakery, coffee)"), 7, 21),
    "weekly": (_l("Weekly (groceries, pet food)"), 21, 60),
    "monthly": (_l("Monthly (beauty, hair, supplements)"), 60, 120),
    "quarterly": (_l("Quarterly (clothes, cosmetics)"), 150, 300),
    "yearly": (_l("Yearly (tyres, insurance, gifts)"), 450, 730),
}
RFM_MODES = ("quantiles", "fixed")
MAX_FACTOR = 20.0
MAX_DAYS = 3650
MAX_ORDERS = 10**9
MAX_AMOUNT = 10**15  # minor units, as crm.orders caps an order's amount


@dataclass(frozen=True)
class Segmentation:
    business_type: str = "monthly"
    # Fallback thresholds in days for customers with too few orders (set from the business type).
    lapsing_days: int = 60
    lapsed_days: int = 120
    # Personal cadence: lapsing past this many usual intervals since the last order, lapsed past that.
    lapsing_factor: float = 1.5
    lapsed_factor: float = 3.0
    rfm_mode: str = "quantiles"
    # Fixed boundaries (used when rfm_mode is "fixed"): recency 3 within r3_days, 2 within r2_days;
    # frequency 2 from f2_orders, 3 from f3_orders; monetary 2 from m2_amount, 3 from m3_amount
    # (minor units).
    r3_days: int = 30
    r2_days: int = 90
    f2_orders: int = 2
    f3_orders: int = 5
    m2_amount: int = 500_000
    m3_amount: int = 2_000_000
    group_names: dict[str, str] = field(default_factory=dict)

    def group_name(self, key: str) -> str:
        return self.group_names.get(key) or str(rfm.GROUPS[key])

    def validate(self) -> Segmentation:
        """Return self, or raise FieldError naming the first unworkable field."""
        if self.business_type not in BUSINESS_TYPES:
            raise FieldError("business_type", _l("Choose one of the listed business types."))
        if self.rfm_mode not in RFM_MODES:
            raise FieldError("rfm_mode", _l("Choose quantiles or fixed boundaries."))
        for name in ("lapsing_days", "lapsed_days", "r3_days", "r2_days"):
            if not 1 <= getattr(self, name) <= MAX_DAYS:
                raise FieldError(name, _l("Enter a number of days from 1 to %(max)s.", max=MAX_DAYS))
        if self.lapsed_days <= self.lapsing_days:
            raise FieldError("lapsed_days", _l("Lapsed must come after lapsing: enter more days."))
        if not 1.0 <= self.lapsing_factor <= MAX_FACTOR:  # also refuses NaN
            raise FieldError("lapsing_factor", _l("Enter a factor from 1 to %(max)s.", max=int(MAX_FACTOR)))
        if not self.lapsing_factor < self.lapsed_factor <= MAX_FACTOR:
            raise FieldError("lapsed_factor", _l("Enter a factor above the lapsing one and at most %(max)s.",
                                                 max=int(MAX_FACTOR)))
        if self.r2_days <= self.r3_days:
            raise FieldError("r2_days", _l("Must be more days than the boundary for a recency of 3."))
        if not 1 <= self.f2_orders <= MAX_ORDERS:
            raise FieldError("f2_orders", _l("Enter at least 1 order."))
        if self.f3_orders > MAX_ORDERS:
            raise FieldError("f3_orders", _l("Enter a smaller number."))
        if self.m3_amount > MAX_AMOUNT:
            raise FieldError("m3_amount", _l("Enter a smaller amount."))
        if self.f3_orders <= self.f2_orders:
            raise FieldError("f3_orders", _l("Must be more orders than the boundary for a frequency of 2."))
        if self.m2_amount < 0:
            raise FieldError("m2_amount", _l("Enter an amount of zero or more."))
        if self.m3_amount <= self.m2_amount:
            raise FieldError("m3_amount", _l("Must be more than the boundary for a monetary score of 2."))
        for key, name in self.group_names.items():
            if key not in rfm.GROUPS:
                raise FieldError("group_names", _l("Unknown group."))
            if len(name) > 40:
                raise FieldError(f"group_{key}", _l("Keep the name under 40 characters."))
        return self


# What happens to a customer nobody answered after the last allowed attempt.
AFTER_ATTEMPTS = {
    "queue": _l("Back to the lapsed queue"),
    "inactive": _l("Move to the inactive list"),
}
MAX_CAP = 1000


@dataclass(frozen=True)
class CallRules:
    daily_cap: int = 40  # calls a manager's day holds; the rest rolls to the next working day
    attempt_limit: int = 3  # unanswered calls before giving up on the phone
    after_attempts: str = "queue"
    returned_within_days: int = 14  # a call "brought the customer back" if they ordered this soon after

    def validate(self) -> CallRules:
        if not 1 <= self.daily_cap <= MAX_CAP:
            raise FieldError("daily_cap", _l("Enter a number of calls from 1 to %(max)s.", max=MAX_CAP))
        if not 1 <= self.attempt_limit <= 10:
            raise FieldError("attempt_limit", _l("Enter a number of attempts from 1 to %(max)s.", max=10))
        if self.after_attempts not in AFTER_ATTEMPTS:
            raise FieldError("after_attempts", _l("Choose one of the offered values."))
        if not 1 <= self.returned_within_days <= 365:
            raise FieldError("returned_within_days", _l("Enter a number of days from 1 to %(max)s.", max=365))
        return self


CHANNELS = ("email", "sms", "telegram", "whatsapp")
MAX_URLS_LENGTH = 4000
MAX_MESSAGE_COST = 100_000  # minor units: 1,000.00 a message is a typo, not a price


@dataclass(frozen=True)
class Messaging:
    """How sequences reach customers: Apprise URLs per channel (recipient left as a placeholder),
    the order channels are tried in, how many messages one customer may get in a week, and what a
    message costs on each channel (for the campaign report)."""

    urls: dict[str, str] = field(default_factory=dict)  # channel -> Apprise URLs, one per line
    fallback: tuple[str, ...] = CHANNELS
    weekly_cap: int = 3
    costs: dict[str, int] = field(default_factory=dict)  # channel -> minor units a message; 0 or missing: not entered

    def validate(self) -> Messaging:
        for channel, value in self.urls.items():
            if channel not in CHANNELS:
                raise FieldError("urls", _l("Unknown channel."))
            if len(value) > MAX_URLS_LENGTH:
                raise FieldError(f"urls_{channel}", _l("Keep it under %(max)s characters.", max=MAX_URLS_LENGTH))
        if sorted(self.fallback) != sorted(CHANNELS):
            raise FieldError("fallback", _l("Put every channel in the order once."))
        if not 1 <= self.weekly_cap <= 50:
            raise FieldError("weekly_cap", _l("Enter a number of messages from 1 to %(max)s.", max=50))
        for channel, cost in self.costs.items():
            if channel not in CHANNELS:
                raise FieldError("costs", _l("Unknown channel."))
            if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
                raise FieldError(f"cost_{channel}", _l("Enter an amount of zero or more."))
            if cost > MAX_MESSAGE_COST:
                raise FieldError(f"cost_{channel}", _l("Enter a smaller amount."))
        return self


KEYS = {Segmentation: KEY, CallRules: "calls", Messaging: "messaging"}


def load(kind: type = Segmentation):
    """Return the team's settings of a kind, with defaults for anything never set or no longer known."""
    row = db.session.get(TeamSetting, KEYS[kind])
    stored = row.value if row else {}
    known = {f.name for f in fields(kind)}
    values = {k: v for k, v in stored.items() if k in known}
    if "fallback" in values:  # JSON keeps tuples as lists; frozen settings compare as tuples
        values["fallback"] = tuple(values["fallback"])
    return kind(**values)


def record(key: str, stamp: str) -> dict:
    """What a job wrote down under `key` (the last rebuild, the dashboard's summaries), with its
    `stamp` field read back as a datetime; {} before the first time."""
    row = db.session.get(TeamSetting, key)
    value = dict(row.value) if row else {}
    if stamp in value:
        value[stamp] = datetime.fromisoformat(value[stamp])
    return value


def save(settings):
    """Validate and store the settings (the caller commits); raises FieldError when unworkable."""
    settings.validate()
    key = KEYS[type(settings)]
    row = db.session.get(TeamSetting, key) or TeamSetting(key=key)
    row.value = asdict(settings)
    db.session.add(row)
    g.pop("segments_context", None)  # crm.segments keeps the settings for a request or job
    return settings


def with_business_type(settings: Segmentation, business_type: str) -> Segmentation:
    """Return the settings with a business type and its default fallback thresholds."""
    if business_type not in BUSINESS_TYPES:
        raise FieldError("business_type", _l("Choose one of the listed business types."))
    _, lapsing, lapsed = BUSINESS_TYPES[business_type]
    return replace(settings, business_type=business_type, lapsing_days=lapsing, lapsed_days=lapsed)
