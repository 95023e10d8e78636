from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreditRequest(_message.Message):
    __slots__ = ("amount", "currency", "description", "request_id", "body")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    amount: _struct_pb2.Value
    currency: str
    description: str
    request_id: str
    body: _struct_pb2.Struct
    def __init__(self, amount: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AllocateRequest(_message.Message):
    __slots__ = ("team_id", "user_id", "amount", "currency", "description", "request_id", "body")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    amount: _struct_pb2.Value
    currency: str
    description: str
    request_id: str
    body: _struct_pb2.Struct
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., amount: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ReclaimRequest(_message.Message):
    __slots__ = ("team_id", "user_id", "amount", "currency", "description", "request_id", "body")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    amount: _struct_pb2.Value
    currency: str
    description: str
    request_id: str
    body: _struct_pb2.Struct
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., amount: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("from_team_id", "to_team_id", "from_user_id", "to_user_id", "amount", "currency", "description", "request_id", "body")
    FROM_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TO_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_USER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    from_team_id: str
    to_team_id: str
    from_user_id: str
    to_user_id: str
    amount: _struct_pb2.Value
    currency: str
    description: str
    request_id: str
    body: _struct_pb2.Struct
    def __init__(self, from_team_id: _Optional[str] = ..., to_team_id: _Optional[str] = ..., from_user_id: _Optional[str] = ..., to_user_id: _Optional[str] = ..., amount: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListWalletsRequest(_message.Message):
    __slots__ = ("scope",)
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    scope: str
    def __init__(self, scope: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("team_id", "user_id")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("wallet_id", "page_size", "page_token")
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    wallet_id: str
    page_size: int
    page_token: str
    def __init__(self, wallet_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("status", "team_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    team_id: str
    def __init__(self, status: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class ApproveTicketRequest(_message.Message):
    __slots__ = ("ticket_id", "funding", "reason", "body")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    funding: str
    reason: str
    body: _struct_pb2.Struct
    def __init__(self, ticket_id: _Optional[str] = ..., funding: _Optional[str] = ..., reason: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DenyTicketRequest(_message.Message):
    __slots__ = ("ticket_id", "reason", "body")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    reason: str
    body: _struct_pb2.Struct
    def __init__(self, ticket_id: _Optional[str] = ..., reason: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetChargebackReportRequest(_message.Message):
    __slots__ = ("period", "format", "group_by", "to")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    period: str
    format: str
    group_by: str
    to: str
    def __init__(self, period: _Optional[str] = ..., format: _Optional[str] = ..., group_by: _Optional[str] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class TeamMoveRequest(_message.Message):
    __slots__ = ("team_id", "user_id", "amount", "currency", "description", "request_id", "body")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    amount: _struct_pb2.Value
    currency: str
    description: str
    request_id: str
    body: _struct_pb2.Struct
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., amount: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TopUpRequest(_message.Message):
    __slots__ = ("team_id", "amount", "currency", "description", "body")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    amount: _struct_pb2.Value
    currency: str
    description: str
    body: _struct_pb2.Struct
    def __init__(self, team_id: _Optional[str] = ..., amount: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListTopUpsRequest(_message.Message):
    __slots__ = ("status", "team_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    team_id: str
    def __init__(self, status: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class DecideTopUpRequest(_message.Message):
    __slots__ = ("topup_id", "reason", "body")
    TOPUP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    topup_id: str
    reason: str
    body: _struct_pb2.Struct
    def __init__(self, topup_id: _Optional[str] = ..., reason: _Optional[str] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("name", "roles", "billing", "reads_all", "teams", "organization", "currency", "current_month", "current_quarter")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    BILLING_FIELD_NUMBER: _ClassVar[int]
    READS_ALL_FIELD_NUMBER: _ClassVar[int]
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_MONTH_FIELD_NUMBER: _ClassVar[int]
    CURRENT_QUARTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    billing: bool
    reads_all: bool
    teams: _containers.RepeatedScalarFieldContainer[str]
    organization: str
    currency: str
    current_month: str
    current_quarter: str
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., billing: _Optional[bool] = ..., reads_all: _Optional[bool] = ..., teams: _Optional[_Iterable[str]] = ..., organization: _Optional[str] = ..., currency: _Optional[str] = ..., current_month: _Optional[str] = ..., current_quarter: _Optional[str] = ...) -> None: ...

class GetConsoleAssetRequest(_message.Message):
    __slots__ = ("asset",)
    ASSET_FIELD_NUMBER: _ClassVar[int]
    asset: str
    def __init__(self, asset: _Optional[str] = ...) -> None: ...
