"""Notification channels, their delivery log, and the payload of the delivery job."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from fusion.notifications.models import SUBSCRIBABLE, ChannelKind, DeliveryState, Event
from fusion.notifications.service import DELIVER_JOB, THRESHOLDS
from schemas.common import PageQuerySchema, StrictSchema, Text, Timestamps, page_of
from schemas.jobs import register_payload_schema

EVENTS = [e.value for e in SUBSCRIBABLE]
EVENTS_HELP = f"Which events the channel receives: any of {', '.join(EVENTS)}."
THRESHOLDS_HELP = (
    "The periodic checks' thresholds for this channel, each a positive integer: "
    + ", ".join(f"{k} (default {v})" for k, v in THRESHOLDS.items())
    + "."
)
TARGET_HELP = (
    "An email address (email), a Slack-compatible incoming webhook URL (slack) or the URL "
    "to POST signed events to (webhook). A Slack URL is shown afterwards as its host only."
)
NAME = validate.Length(min=1, max=200)
Thresholds = fields.Dict(
    keys=fields.String(validate=validate.OneOf(list(THRESHOLDS))),
    values=fields.Integer(strict=True, validate=validate.Range(min=1, max=10**6)),
    metadata={"description": THRESHOLDS_HELP},
)


def _events(*, required: bool = False) -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(EVENTS)),
        required=required,
        validate=validate.Length(min=1, max=len(EVENTS)),
        metadata={"description": EVENTS_HELP},
    )


class ChannelSchema(Timestamps):
    org_id = fields.UUID(required=True)
    name = Text(required=True)
    kind = fields.Enum(ChannelKind, by_value=True, required=True)
    target = fields.String(attribute="shown_target", required=True)
    events = fields.List(fields.String(), required=True)
    enabled = fields.Boolean(required=True)
    thresholds = fields.Dict(required=True)
    created_by = fields.UUID(allow_none=True, required=True)


class ChannelCreatedSchema(ChannelSchema):
    signing_secret = fields.String(
        allow_none=True,
        required=True,
        metadata={
            "description": "A webhook channel's Standard Webhooks secret (whsec_...), shown "
            "this once: verify webhook-signature with it. None for other kinds."
        },
    )


ChannelPageSchema = page_of(ChannelSchema, "NotificationChannelPageSchema")


class ChannelCreateSchema(StrictSchema):
    name = Text(required=True, validate=NAME)
    kind = fields.Enum(ChannelKind, by_value=True, required=True)
    target = Text(required=True, validate=validate.Length(min=3, max=2048),
                  metadata={"description": TARGET_HELP})  # fmt: skip
    events = _events(required=True)
    enabled = fields.Boolean(load_default=True)
    thresholds = Thresholds

    @validates_schema
    def _target_fits_kind(self, data: dict[str, Any], **_: Any) -> None:
        kind, target = data.get("kind"), data.get("target")
        if kind is None or target is None:
            return
        check: Any = (
            validate.Email(error="Not a valid email address.")
            if kind is ChannelKind.EMAIL
            else validate.URL(schemes={"http", "https"}, require_tld=False,
                              error="Not a valid http(s) URL.")
        )  # fmt: skip
        try:
            check(target)
        except ValidationError as exc:
            raise ValidationError(exc.messages, "target") from None


class ChannelUpdateSchema(StrictSchema):
    name = Text(validate=NAME)
    target = Text(validate=validate.Length(min=3, max=2048), metadata={"description": TARGET_HELP})
    events = _events()
    enabled = fields.Boolean()
    thresholds = Thresholds


class ChannelQuerySchema(PageQuerySchema):
    kind = fields.Enum(ChannelKind, by_value=True, load_default=None)


class AttemptSchema(StrictSchema):
    attempt = fields.Integer(required=True)
    at = fields.String(required=True)
    response_code = fields.Integer(allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True)
    retry_at = fields.String(allow_none=True, required=True)


class DeliverySchema(Timestamps):
    channel_id = fields.UUID(required=True)
    event = fields.String(required=True)
    message_id = fields.String(required=True, metadata={"description": "The webhook-id sent."})
    status = fields.Enum(DeliveryState, by_value=True, required=True)
    attempts = fields.Integer(required=True)
    response_code = fields.Integer(allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True)
    attempt_log = fields.List(fields.Nested(AttemptSchema), required=True)
    payload = fields.Dict(required=True)
    job_id = fields.UUID(allow_none=True, required=True)
    delivered_at = fields.AwareDateTime(allow_none=True, required=True)


DeliveryPageSchema = page_of(DeliverySchema, "NotificationDeliveryPageSchema")


class DeliveryQuerySchema(PageQuerySchema):
    channel_id = fields.UUID(load_default=None)
    status = fields.Enum(DeliveryState, by_value=True, load_default=None)
    event = fields.String(validate=validate.OneOf([e.value for e in Event]), load_default=None)


class DeliverNotificationPayloadSchema(StrictSchema):
    delivery_id = fields.UUID(required=True)


register_payload_schema(DELIVER_JOB, DeliverNotificationPayloadSchema)
