"""Budget alerts: threshold crossings and status changes as deduplicated events + webhook."""

from keeptrusts_authz.alerts.engine import AlertEngine, AlertEvent
from keeptrusts_authz.alerts.webhook import WebhookDelivery

__all__ = ["AlertEngine", "AlertEvent", "WebhookDelivery"]
