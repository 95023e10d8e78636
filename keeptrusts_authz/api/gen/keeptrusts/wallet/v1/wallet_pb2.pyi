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

class MoveResponse(_message.Message):
    __slots__ = ("operation", "entry_id", "replayed", "amount", "currency", "balances", "actor")
    class BalancesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    operation: str
    entry_id: str
    replayed: bool
    amount: str
    currency: str
    balances: _containers.ScalarMap[str, str]
    actor: str
    def __init__(self, operation: _Optional[str] = ..., entry_id: _Optional[str] = ..., replayed: _Optional[bool] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., balances: _Optional[_Mapping[str, str]] = ..., actor: _Optional[str] = ...) -> None: ...

class Wallet(_message.Message):
    __slots__ = ("id", "scope", "owner", "balance", "reserved", "allocated", "spent", "status", "burn_rate_per_day", "projected_depletion_date", "currency", "period", "period_allocation", "projected_period_spend")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BURN_RATE_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_DEPLETION_DATE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_PERIOD_SPEND_FIELD_NUMBER: _ClassVar[int]
    id: str
    scope: str
    owner: str
    balance: str
    reserved: str
    allocated: str
    spent: str
    status: str
    burn_rate_per_day: str
    projected_depletion_date: str
    currency: str
    period: str
    period_allocation: str
    projected_period_spend: str
    def __init__(self, id: _Optional[str] = ..., scope: _Optional[str] = ..., owner: _Optional[str] = ..., balance: _Optional[str] = ..., reserved: _Optional[str] = ..., allocated: _Optional[str] = ..., spent: _Optional[str] = ..., status: _Optional[str] = ..., burn_rate_per_day: _Optional[str] = ..., projected_depletion_date: _Optional[str] = ..., currency: _Optional[str] = ..., period: _Optional[str] = ..., period_allocation: _Optional[str] = ..., projected_period_spend: _Optional[str] = ...) -> None: ...

class ListWalletsRequest(_message.Message):
    __slots__ = ("scope",)
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    scope: str
    def __init__(self, scope: _Optional[str] = ...) -> None: ...

class ListWalletsResponse(_message.Message):
    __slots__ = ("wallets", "currency")
    WALLETS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    wallets: _containers.RepeatedCompositeFieldContainer[Wallet]
    currency: str
    def __init__(self, wallets: _Optional[_Iterable[_Union[Wallet, _Mapping]]] = ..., currency: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("team_id", "user_id")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class CascadeStep(_message.Message):
    __slots__ = ("consumer_group", "cascade", "wallets", "on_insufficient", "effective_wallet", "effective_scope", "effective_available")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    WALLETS_FIELD_NUMBER: _ClassVar[int]
    ON_INSUFFICIENT_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_WALLET_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_SCOPE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    cascade: _containers.RepeatedScalarFieldContainer[str]
    wallets: _containers.RepeatedScalarFieldContainer[str]
    on_insufficient: str
    effective_wallet: str
    effective_scope: str
    effective_available: str
    def __init__(self, consumer_group: _Optional[str] = ..., cascade: _Optional[_Iterable[str]] = ..., wallets: _Optional[_Iterable[str]] = ..., on_insufficient: _Optional[str] = ..., effective_wallet: _Optional[str] = ..., effective_scope: _Optional[str] = ..., effective_available: _Optional[str] = ...) -> None: ...

class BalanceResponse(_message.Message):
    __slots__ = ("wallet", "org", "cascade", "currency")
    WALLET_FIELD_NUMBER: _ClassVar[int]
    ORG_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    org: Wallet
    cascade: _containers.RepeatedCompositeFieldContainer[CascadeStep]
    currency: str
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ..., org: _Optional[_Union[Wallet, _Mapping]] = ..., cascade: _Optional[_Iterable[_Union[CascadeStep, _Mapping]]] = ..., currency: _Optional[str] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("wallet_id", "page_size", "page_token")
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    wallet_id: str
    page_size: int
    page_token: str
    def __init__(self, wallet_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("id", "op", "wallet", "amount", "time", "actor", "description", "balance_after", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    op: str
    wallet: str
    amount: str
    time: str
    actor: str
    description: str
    balance_after: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., op: _Optional[str] = ..., wallet: _Optional[str] = ..., amount: _Optional[str] = ..., time: _Optional[str] = ..., actor: _Optional[str] = ..., description: _Optional[str] = ..., balance_after: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token", "currency")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    currency: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("id", "status", "team_id", "consumer_group", "model", "user_id", "amount", "currency", "created", "waiting", "decided_by", "decided_at", "reason", "funding")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    team_id: str
    consumer_group: str
    model: str
    user_id: str
    amount: str
    currency: str
    created: str
    waiting: bool
    decided_by: str
    decided_at: str
    reason: str
    funding: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., team_id: _Optional[str] = ..., consumer_group: _Optional[str] = ..., model: _Optional[str] = ..., user_id: _Optional[str] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., created: _Optional[str] = ..., waiting: _Optional[bool] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[str] = ..., reason: _Optional[str] = ..., funding: _Optional[str] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("status", "team_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    team_id: str
    def __init__(self, status: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class ListTicketsResponse(_message.Message):
    __slots__ = ("tickets",)
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    tickets: _containers.RepeatedCompositeFieldContainer[Ticket]
    def __init__(self, tickets: _Optional[_Iterable[_Union[Ticket, _Mapping]]] = ...) -> None: ...

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

class TopUp(_message.Message):
    __slots__ = ("id", "status", "team_id", "amount", "currency", "description", "requested_by", "created", "decided_by", "decided_at", "reason", "entry_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    team_id: str
    amount: str
    currency: str
    description: str
    requested_by: str
    created: str
    decided_by: str
    decided_at: str
    reason: str
    entry_id: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., team_id: _Optional[str] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., description: _Optional[str] = ..., requested_by: _Optional[str] = ..., created: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[str] = ..., reason: _Optional[str] = ..., entry_id: _Optional[str] = ...) -> None: ...

class ListTopUpsRequest(_message.Message):
    __slots__ = ("status", "team_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    team_id: str
    def __init__(self, status: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class ListTopUpsResponse(_message.Message):
    __slots__ = ("topups",)
    TOPUPS_FIELD_NUMBER: _ClassVar[int]
    topups: _containers.RepeatedCompositeFieldContainer[TopUp]
    def __init__(self, topups: _Optional[_Iterable[_Union[TopUp, _Mapping]]] = ...) -> None: ...

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
