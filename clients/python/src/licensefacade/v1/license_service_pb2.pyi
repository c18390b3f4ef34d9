import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnsureAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENSURE_ACTION_UNSPECIFIED: _ClassVar[EnsureAction]
    ENSURE_ACTION_NONE: _ClassVar[EnsureAction]
    ENSURE_ACTION_ORDERED: _ClassVar[EnsureAction]
    ENSURE_ACTION_CHANGED: _ClassVar[EnsureAction]

class ReleasePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_POLICY_UNSPECIFIED: _ClassVar[ReleasePolicy]
    RELEASE_POLICY_CANCEL: _ClassVar[ReleasePolicy]
    RELEASE_POLICY_PARK: _ClassVar[ReleasePolicy]

class ReleaseOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_OUTCOME_UNSPECIFIED: _ClassVar[ReleaseOutcome]
    RELEASE_OUTCOME_PARKED: _ClassVar[ReleaseOutcome]
    RELEASE_OUTCOME_CANCELLED: _ClassVar[ReleaseOutcome]

class MissingReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISSING_REASON_UNSPECIFIED: _ClassVar[MissingReason]
    MISSING_REASON_ABSENT: _ClassVar[MissingReason]
    MISSING_REASON_DELETED: _ClassVar[MissingReason]

class MismatchField(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISMATCH_FIELD_UNSPECIFIED: _ClassVar[MismatchField]
    MISMATCH_FIELD_IP: _ClassVar[MismatchField]
    MISMATCH_FIELD_TARIFF: _ClassVar[MismatchField]
    MISMATCH_FIELD_STATUS: _ClassVar[MismatchField]
    MISMATCH_FIELD_EXPIRY: _ClassVar[MismatchField]
ENSURE_ACTION_UNSPECIFIED: EnsureAction
ENSURE_ACTION_NONE: EnsureAction
ENSURE_ACTION_ORDERED: EnsureAction
ENSURE_ACTION_CHANGED: EnsureAction
RELEASE_POLICY_UNSPECIFIED: ReleasePolicy
RELEASE_POLICY_CANCEL: ReleasePolicy
RELEASE_POLICY_PARK: ReleasePolicy
RELEASE_OUTCOME_UNSPECIFIED: ReleaseOutcome
RELEASE_OUTCOME_PARKED: ReleaseOutcome
RELEASE_OUTCOME_CANCELLED: ReleaseOutcome
MISSING_REASON_UNSPECIFIED: MissingReason
MISSING_REASON_ABSENT: MissingReason
MISSING_REASON_DELETED: MissingReason
MISMATCH_FIELD_UNSPECIFIED: MismatchField
MISMATCH_FIELD_IP: MismatchField
MISMATCH_FIELD_TARIFF: MismatchField
MISMATCH_FIELD_STATUS: MismatchField
MISMATCH_FIELD_EXPIRY: MismatchField

class Panel(_message.Message):
    __slots__ = ("name", "tariff_id", "trial", "supports_nodes", "aliases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARIFF_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_NODES_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    tariff_id: int
    trial: bool
    supports_nodes: bool
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., tariff_id: _Optional[int] = ..., trial: _Optional[bool] = ..., supports_nodes: _Optional[bool] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPanelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPanelsResponse(_message.Message):
    __slots__ = ("panels",)
    PANELS_FIELD_NUMBER: _ClassVar[int]
    panels: _containers.RepeatedCompositeFieldContainer[Panel]
    def __init__(self, panels: _Optional[_Iterable[_Union[Panel, _Mapping]]] = ...) -> None: ...

class Server(_message.Message):
    __slots__ = ("id", "ip", "hostname")
    ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    ip: str
    hostname: str
    def __init__(self, id: _Optional[str] = ..., ip: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class LicenseError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class License(_message.Message):
    __slots__ = ("id", "server_id", "ip", "hostname", "panel", "tariff_id", "state", "license_key", "upstream_id", "period_months", "auto_renew", "nodes", "trial", "expire_time", "create_time", "update_time", "last_error", "reused_from", "reused_by")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[License.State]
        PENDING: _ClassVar[License.State]
        PROVISIONING: _ClassVar[License.State]
        ACTIVE: _ClassVar[License.State]
        SUSPENDED: _ClassVar[License.State]
        CANCELLED: _ClassVar[License.State]
        FAILED: _ClassVar[License.State]
        NEEDS_ATTENTION: _ClassVar[License.State]
        PARKED: _ClassVar[License.State]
        REUSED: _ClassVar[License.State]
    STATE_UNSPECIFIED: License.State
    PENDING: License.State
    PROVISIONING: License.State
    ACTIVE: License.State
    SUSPENDED: License.State
    CANCELLED: License.State
    FAILED: License.State
    NEEDS_ATTENTION: License.State
    PARKED: License.State
    REUSED: License.State
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    TARIFF_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_KEY_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    AUTO_RENEW_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_FIELD_NUMBER: _ClassVar[int]
    REUSED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    server_id: str
    ip: str
    hostname: str
    panel: str
    tariff_id: int
    state: License.State
    license_key: str
    upstream_id: str
    period_months: int
    auto_renew: bool
    nodes: int
    trial: bool
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    last_error: LicenseError
    reused_from: str
    reused_by: str
    def __init__(self, id: _Optional[str] = ..., server_id: _Optional[str] = ..., ip: _Optional[str] = ..., hostname: _Optional[str] = ..., panel: _Optional[str] = ..., tariff_id: _Optional[int] = ..., state: _Optional[_Union[License.State, str]] = ..., license_key: _Optional[str] = ..., upstream_id: _Optional[str] = ..., period_months: _Optional[int] = ..., auto_renew: _Optional[bool] = ..., nodes: _Optional[int] = ..., trial: _Optional[bool] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[_Union[LicenseError, _Mapping]] = ..., reused_from: _Optional[str] = ..., reused_by: _Optional[str] = ...) -> None: ...

class OrderLicenseRequest(_message.Message):
    __slots__ = ("server", "panel", "period_months", "auto_renew", "nodes", "trial", "wait_for_active", "request_id")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    AUTO_RENEW_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    server: Server
    panel: str
    period_months: int
    auto_renew: bool
    nodes: int
    trial: bool
    wait_for_active: bool
    request_id: str
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ..., panel: _Optional[str] = ..., period_months: _Optional[int] = ..., auto_renew: _Optional[bool] = ..., nodes: _Optional[int] = ..., trial: _Optional[bool] = ..., wait_for_active: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class OrderLicenseResponse(_message.Message):
    __slots__ = ("license", "created")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    license: License
    created: bool
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetLicenseRequest(_message.Message):
    __slots__ = ("id", "server_id", "client")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    server_id: str
    client: str
    def __init__(self, id: _Optional[str] = ..., server_id: _Optional[str] = ..., client: _Optional[str] = ...) -> None: ...

class GetLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class ListLicensesRequest(_message.Message):
    __slots__ = ("server_id", "ip", "panel", "state", "page_size", "page_token")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    ip: str
    panel: str
    state: License.State
    page_size: int
    page_token: str
    def __init__(self, server_id: _Optional[str] = ..., ip: _Optional[str] = ..., panel: _Optional[str] = ..., state: _Optional[_Union[License.State, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLicensesResponse(_message.Message):
    __slots__ = ("licenses", "next_page_token")
    LICENSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    licenses: _containers.RepeatedCompositeFieldContainer[License]
    next_page_token: str
    def __init__(self, licenses: _Optional[_Iterable[_Union[License, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class QuoteLicenseRequest(_message.Message):
    __slots__ = ("panel", "period_months", "nodes")
    PANEL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    panel: str
    period_months: int
    nodes: int
    def __init__(self, panel: _Optional[str] = ..., period_months: _Optional[int] = ..., nodes: _Optional[int] = ...) -> None: ...

class QuoteLicenseResponse(_message.Message):
    __slots__ = ("panel", "tariff_id", "period_months", "price", "currency")
    PANEL_FIELD_NUMBER: _ClassVar[int]
    TARIFF_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    panel: str
    tariff_id: int
    period_months: int
    price: str
    currency: str
    def __init__(self, panel: _Optional[str] = ..., tariff_id: _Optional[int] = ..., period_months: _Optional[int] = ..., price: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class RenewLicenseRequest(_message.Message):
    __slots__ = ("id", "period_months", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    period_months: int
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., period_months: _Optional[int] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class RenewLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class ChangeLicenseIpRequest(_message.Message):
    __slots__ = ("id", "ip", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    ip: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., ip: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ChangeLicenseIpResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class ChangeLicensePanelRequest(_message.Message):
    __slots__ = ("id", "panel", "period_months", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    panel: str
    period_months: int
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., panel: _Optional[str] = ..., period_months: _Optional[int] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ChangeLicensePanelResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class SuspendLicenseRequest(_message.Message):
    __slots__ = ("id", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class SuspendLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class ResumeLicenseRequest(_message.Message):
    __slots__ = ("id", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class CancelLicenseRequest(_message.Message):
    __slots__ = ("id", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class ReissueLicenseKeyRequest(_message.Message):
    __slots__ = ("id", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReissueLicenseKeyResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class EnsureServerLicenseRequest(_message.Message):
    __slots__ = ("server", "panel", "period_months", "auto_renew", "nodes", "wait", "request_id")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    AUTO_RENEW_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    server: Server
    panel: str
    period_months: int
    auto_renew: bool
    nodes: int
    wait: bool
    request_id: str
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ..., panel: _Optional[str] = ..., period_months: _Optional[int] = ..., auto_renew: _Optional[bool] = ..., nodes: _Optional[int] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class EnsureServerLicenseResponse(_message.Message):
    __slots__ = ("license", "action")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    license: License
    action: EnsureAction
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., action: _Optional[_Union[EnsureAction, str]] = ...) -> None: ...

class CancelServerLicenseRequest(_message.Message):
    __slots__ = ("server_id", "wait", "request_id", "policy")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    wait: bool
    request_id: str
    policy: ReleasePolicy
    def __init__(self, server_id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ..., policy: _Optional[_Union[ReleasePolicy, str]] = ...) -> None: ...

class CancelServerLicenseResponse(_message.Message):
    __slots__ = ("license", "outcome", "reason")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    license: License
    outcome: ReleaseOutcome
    reason: str
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., outcome: _Optional[_Union[ReleaseOutcome, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseLicenseRequest(_message.Message):
    __slots__ = ("id", "wait", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReleaseLicenseResponse(_message.Message):
    __slots__ = ("license", "outcome", "reason")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    license: License
    outcome: ReleaseOutcome
    reason: str
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., outcome: _Optional[_Union[ReleaseOutcome, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPoolResponse(_message.Message):
    __slots__ = ("tariffs", "entries")
    TARIFFS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    tariffs: _containers.RepeatedCompositeFieldContainer[PoolTariff]
    entries: _containers.RepeatedCompositeFieldContainer[PoolEntry]
    def __init__(self, tariffs: _Optional[_Iterable[_Union[PoolTariff, _Mapping]]] = ..., entries: _Optional[_Iterable[_Union[PoolEntry, _Mapping]]] = ...) -> None: ...

class PoolTariff(_message.Message):
    __slots__ = ("tariff_id", "panel", "parked", "reusable", "monthly_cost", "reuses", "saved", "currency")
    TARIFF_ID_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    PARKED_FIELD_NUMBER: _ClassVar[int]
    REUSABLE_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_COST_FIELD_NUMBER: _ClassVar[int]
    REUSES_FIELD_NUMBER: _ClassVar[int]
    SAVED_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    tariff_id: int
    panel: str
    parked: int
    reusable: int
    monthly_cost: str
    reuses: int
    saved: str
    currency: str
    def __init__(self, tariff_id: _Optional[int] = ..., panel: _Optional[str] = ..., parked: _Optional[int] = ..., reusable: _Optional[int] = ..., monthly_cost: _Optional[str] = ..., reuses: _Optional[int] = ..., saved: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class PoolEntry(_message.Message):
    __slots__ = ("license", "reusable_time")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    REUSABLE_TIME_FIELD_NUMBER: _ClassVar[int]
    license: License
    reusable_time: _timestamp_pb2.Timestamp
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., reusable_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchLicensesRequest(_message.Message):
    __slots__ = ("after_event_id",)
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    after_event_id: int
    def __init__(self, after_event_id: _Optional[int] = ...) -> None: ...

class WatchLicensesResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: LicenseEvent
    def __init__(self, event: _Optional[_Union[LicenseEvent, _Mapping]] = ...) -> None: ...

class LicenseEvent(_message.Message):
    __slots__ = ("id", "kind", "license", "time", "price")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[LicenseEvent.Kind]
        CREATED: _ClassVar[LicenseEvent.Kind]
        STATE_CHANGED: _ClassVar[LicenseEvent.Kind]
        KEY_ISSUED: _ClassVar[LicenseEvent.Kind]
        RENEWED: _ClassVar[LicenseEvent.Kind]
        IP_CHANGED: _ClassVar[LicenseEvent.Kind]
        PANEL_CHANGED: _ClassVar[LicenseEvent.Kind]
        OPERATION_FAILED: _ClassVar[LicenseEvent.Kind]
        EVENTS_EXPIRED: _ClassVar[LicenseEvent.Kind]
        SNAPSHOT: _ClassVar[LicenseEvent.Kind]
    KIND_UNSPECIFIED: LicenseEvent.Kind
    CREATED: LicenseEvent.Kind
    STATE_CHANGED: LicenseEvent.Kind
    KEY_ISSUED: LicenseEvent.Kind
    RENEWED: LicenseEvent.Kind
    IP_CHANGED: LicenseEvent.Kind
    PANEL_CHANGED: LicenseEvent.Kind
    OPERATION_FAILED: LicenseEvent.Kind
    EVENTS_EXPIRED: LicenseEvent.Kind
    SNAPSHOT: LicenseEvent.Kind
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: LicenseEvent.Kind
    license: License
    time: _timestamp_pb2.Timestamp
    price: CallPrice
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[_Union[LicenseEvent.Kind, str]] = ..., license: _Optional[_Union[License, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., price: _Optional[_Union[CallPrice, _Mapping]] = ...) -> None: ...

class ReconcileRequest(_message.Message):
    __slots__ = ("expiring_within_days",)
    EXPIRING_WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    expiring_within_days: int
    def __init__(self, expiring_within_days: _Optional[int] = ...) -> None: ...

class ReconcileResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: DriftReport
    def __init__(self, report: _Optional[_Union[DriftReport, _Mapping]] = ...) -> None: ...

class ListDriftRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDriftResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: DriftReport
    def __init__(self, report: _Optional[_Union[DriftReport, _Mapping]] = ...) -> None: ...

class AdoptLicenseRequest(_message.Message):
    __slots__ = ("upstream_id", "server_id", "hostname")
    UPSTREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    upstream_id: str
    server_id: str
    hostname: str
    def __init__(self, upstream_id: _Optional[str] = ..., server_id: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class AdoptLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class ResolveLicenseRequest(_message.Message):
    __slots__ = ("id", "action", "reason", "upstream_id", "wait", "request_id")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[ResolveLicenseRequest.Action]
        RETRY: _ClassVar[ResolveLicenseRequest.Action]
        BIND: _ClassVar[ResolveLicenseRequest.Action]
        ABANDON: _ClassVar[ResolveLicenseRequest.Action]
    ACTION_UNSPECIFIED: ResolveLicenseRequest.Action
    RETRY: ResolveLicenseRequest.Action
    BIND: ResolveLicenseRequest.Action
    ABANDON: ResolveLicenseRequest.Action
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: ResolveLicenseRequest.Action
    reason: str
    upstream_id: str
    wait: bool
    request_id: str
    def __init__(self, id: _Optional[str] = ..., action: _Optional[_Union[ResolveLicenseRequest.Action, str]] = ..., reason: _Optional[str] = ..., upstream_id: _Optional[str] = ..., wait: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResolveLicenseResponse(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class DriftReport(_message.Message):
    __slots__ = ("generate_time", "expiring_within_days", "upstream_seen", "local_checked", "orphan_count", "missing_count", "mismatch_count", "expiring_count", "truncated", "orphans", "missing", "mismatches", "expiring")
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_SEEN_FIELD_NUMBER: _ClassVar[int]
    LOCAL_CHECKED_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISMATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ORPHANS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_FIELD_NUMBER: _ClassVar[int]
    generate_time: _timestamp_pb2.Timestamp
    expiring_within_days: int
    upstream_seen: int
    local_checked: int
    orphan_count: int
    missing_count: int
    mismatch_count: int
    expiring_count: int
    truncated: bool
    orphans: _containers.RepeatedCompositeFieldContainer[OrphanLicense]
    missing: _containers.RepeatedCompositeFieldContainer[MissingLicense]
    mismatches: _containers.RepeatedCompositeFieldContainer[LicenseMismatch]
    expiring: _containers.RepeatedCompositeFieldContainer[ExpiringLicense]
    def __init__(self, generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expiring_within_days: _Optional[int] = ..., upstream_seen: _Optional[int] = ..., local_checked: _Optional[int] = ..., orphan_count: _Optional[int] = ..., missing_count: _Optional[int] = ..., mismatch_count: _Optional[int] = ..., expiring_count: _Optional[int] = ..., truncated: _Optional[bool] = ..., orphans: _Optional[_Iterable[_Union[OrphanLicense, _Mapping]]] = ..., missing: _Optional[_Iterable[_Union[MissingLicense, _Mapping]]] = ..., mismatches: _Optional[_Iterable[_Union[LicenseMismatch, _Mapping]]] = ..., expiring: _Optional[_Iterable[_Union[ExpiringLicense, _Mapping]]] = ...) -> None: ...

class OrphanLicense(_message.Message):
    __slots__ = ("upstream_id", "ip", "tariff_id", "tariff_name", "panel", "licname", "remote_id", "upstream_status", "create_time", "expire_time")
    UPSTREAM_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    TARIFF_ID_FIELD_NUMBER: _ClassVar[int]
    TARIFF_NAME_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    LICNAME_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ID_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    upstream_id: str
    ip: str
    tariff_id: int
    tariff_name: str
    panel: str
    licname: str
    remote_id: str
    upstream_status: int
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, upstream_id: _Optional[str] = ..., ip: _Optional[str] = ..., tariff_id: _Optional[int] = ..., tariff_name: _Optional[str] = ..., panel: _Optional[str] = ..., licname: _Optional[str] = ..., remote_id: _Optional[str] = ..., upstream_status: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MissingLicense(_message.Message):
    __slots__ = ("license", "reason")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    license: License
    reason: MissingReason
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., reason: _Optional[_Union[MissingReason, str]] = ...) -> None: ...

class LicenseMismatch(_message.Message):
    __slots__ = ("license", "field", "ours", "upstream")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OURS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    license: License
    field: MismatchField
    ours: str
    upstream: str
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., field: _Optional[_Union[MismatchField, str]] = ..., ours: _Optional[str] = ..., upstream: _Optional[str] = ...) -> None: ...

class ExpiringLicense(_message.Message):
    __slots__ = ("license", "days_left")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    DAYS_LEFT_FIELD_NUMBER: _ClassVar[int]
    license: License
    days_left: int
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ..., days_left: _Optional[int] = ...) -> None: ...

class ListAuditEntriesRequest(_message.Message):
    __slots__ = ("license_id", "page_size", "page_token")
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    license_id: str
    page_size: int
    page_token: str
    def __init__(self, license_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("id", "time", "client", "action", "license_id", "server_id", "request_id", "upstream_id", "outcome", "detail", "price")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[AuditEntry.Outcome]
        ACCEPTED: _ClassVar[AuditEntry.Outcome]
        SUCCEEDED: _ClassVar[AuditEntry.Outcome]
        FAILED: _ClassVar[AuditEntry.Outcome]
        NEEDS_ATTENTION: _ClassVar[AuditEntry.Outcome]
    OUTCOME_UNSPECIFIED: AuditEntry.Outcome
    ACCEPTED: AuditEntry.Outcome
    SUCCEEDED: AuditEntry.Outcome
    FAILED: AuditEntry.Outcome
    NEEDS_ATTENTION: AuditEntry.Outcome
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    id: int
    time: _timestamp_pb2.Timestamp
    client: str
    action: str
    license_id: str
    server_id: str
    request_id: str
    upstream_id: str
    outcome: AuditEntry.Outcome
    detail: str
    price: CallPrice
    def __init__(self, id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client: _Optional[str] = ..., action: _Optional[str] = ..., license_id: _Optional[str] = ..., server_id: _Optional[str] = ..., request_id: _Optional[str] = ..., upstream_id: _Optional[str] = ..., outcome: _Optional[_Union[AuditEntry.Outcome, str]] = ..., detail: _Optional[str] = ..., price: _Optional[_Union[CallPrice, _Mapping]] = ...) -> None: ...

class CallPrice(_message.Message):
    __slots__ = ("amount", "currency", "unknown_reason")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_REASON_FIELD_NUMBER: _ClassVar[int]
    amount: str
    currency: str
    unknown_reason: str
    def __init__(self, amount: _Optional[str] = ..., currency: _Optional[str] = ..., unknown_reason: _Optional[str] = ...) -> None: ...

class GetCostReportRequest(_message.Message):
    __slots__ = ("month",)
    MONTH_FIELD_NUMBER: _ClassVar[int]
    month: str
    def __init__(self, month: _Optional[str] = ...) -> None: ...

class GetCostReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: CostReport
    def __init__(self, report: _Optional[_Union[CostReport, _Mapping]] = ...) -> None: ...

class CostReport(_message.Message):
    __slots__ = ("month", "currency", "revenue_currency", "rows", "totals", "generate_time")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REVENUE_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    month: str
    currency: str
    revenue_currency: str
    rows: _containers.RepeatedCompositeFieldContainer[CostReportRow]
    totals: CostReportRow
    generate_time: _timestamp_pb2.Timestamp
    def __init__(self, month: _Optional[str] = ..., currency: _Optional[str] = ..., revenue_currency: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[CostReportRow, _Mapping]]] = ..., totals: _Optional[_Union[CostReportRow, _Mapping]] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CostReportRow(_message.Message):
    __slots__ = ("client", "panel", "paid_calls", "unpriced_calls", "failed_calls", "orders", "renewals", "panel_changes", "cost", "revenue", "margin", "unsold_calls", "live_at_month_end", "next_month_renewals", "next_month_committed", "next_month_unpriced")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    PAID_CALLS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILED_CALLS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    RENEWALS_FIELD_NUMBER: _ClassVar[int]
    PANEL_CHANGES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    UNSOLD_CALLS_FIELD_NUMBER: _ClassVar[int]
    LIVE_AT_MONTH_END_FIELD_NUMBER: _ClassVar[int]
    NEXT_MONTH_RENEWALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_MONTH_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    NEXT_MONTH_UNPRICED_FIELD_NUMBER: _ClassVar[int]
    client: str
    panel: str
    paid_calls: int
    unpriced_calls: int
    failed_calls: int
    orders: str
    renewals: str
    panel_changes: str
    cost: str
    revenue: str
    margin: str
    unsold_calls: int
    live_at_month_end: int
    next_month_renewals: int
    next_month_committed: str
    next_month_unpriced: int
    def __init__(self, client: _Optional[str] = ..., panel: _Optional[str] = ..., paid_calls: _Optional[int] = ..., unpriced_calls: _Optional[int] = ..., failed_calls: _Optional[int] = ..., orders: _Optional[str] = ..., renewals: _Optional[str] = ..., panel_changes: _Optional[str] = ..., cost: _Optional[str] = ..., revenue: _Optional[str] = ..., margin: _Optional[str] = ..., unsold_calls: _Optional[int] = ..., live_at_month_end: _Optional[int] = ..., next_month_renewals: _Optional[int] = ..., next_month_committed: _Optional[str] = ..., next_month_unpriced: _Optional[int] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("id", "client", "all_clients", "url", "event_types", "state", "last_event_id", "backlog", "delivered", "attempts", "last_error", "next_attempt_time", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Webhook.State]
        ACTIVE: _ClassVar[Webhook.State]
        FAILING: _ClassVar[Webhook.State]
    STATE_UNSPECIFIED: Webhook.State
    ACTIVE: Webhook.State
    FAILING: Webhook.State
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    ALL_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    client: str
    all_clients: bool
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[LicenseEvent.Kind]
    state: Webhook.State
    last_event_id: int
    backlog: int
    delivered: int
    attempts: int
    last_error: str
    next_attempt_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., client: _Optional[str] = ..., all_clients: _Optional[bool] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[LicenseEvent.Kind, str]]] = ..., state: _Optional[_Union[Webhook.State, str]] = ..., last_event_id: _Optional[int] = ..., backlog: _Optional[int] = ..., delivered: _Optional[int] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWebhookRequest(_message.Message):
    __slots__ = ("url", "event_types", "secret")
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[LicenseEvent.Kind]
    secret: str
    def __init__(self, url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[LicenseEvent.Kind, str]]] = ..., secret: _Optional[str] = ...) -> None: ...

class CreateWebhookResponse(_message.Message):
    __slots__ = ("webhook", "secret")
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    webhook: Webhook
    secret: str
    def __init__(self, webhook: _Optional[_Union[Webhook, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListWebhooksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWebhooksResponse(_message.Message):
    __slots__ = ("webhooks",)
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    webhooks: _containers.RepeatedCompositeFieldContainer[Webhook]
    def __init__(self, webhooks: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ...) -> None: ...

class DeleteWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteWebhookResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeWebhookResponse(_message.Message):
    __slots__ = ("webhook",)
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    webhook: Webhook
    def __init__(self, webhook: _Optional[_Union[Webhook, _Mapping]] = ...) -> None: ...
