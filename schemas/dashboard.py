"""The dashboard's reads: hourly series and the hub's process heartbeats."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.common import Moment, StrictSchema, Text


class HourlyQuerySchema(StrictSchema):
    since = Moment(
        load_default=None,
        metadata={
            "description": "From this moment's clock hour (default: 24 h ago; 7 days at most)."
        },
    )


class HourSchema(Schema):
    hour = fields.AwareDateTime(required=True, metadata={"description": "The hour's start (UTC)."})
    jobs_finished = fields.Integer(required=True, metadata={"description": "Jobs completed."})
    jobs_failed = fields.Integer(required=True, metadata={"description": "Jobs failed for good."})
    throttles = fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Calls throttled, all stores (null: the broker was unreadable)."},
    )
    throttles_by_store = fields.Dict(
        keys=Text(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "By store id."},
    )
    sync_lag_s = fields.Dict(
        keys=Text(),
        values=fields.Float(allow_none=True),
        required=True,
        metadata={
            "description": "By store id: seconds from the store's last completed inventory sync "
            "to the hour's end (now, for the current hour); null before any known sync."
        },
    )


class HourlySchema(Schema):
    since = fields.AwareDateTime(required=True)
    hours = fields.List(fields.Nested(HourSchema), required=True)


class HeartbeatSchema(Schema):
    name = Text(required=True, metadata={"description": "The Celery node name, or beat."})
    last_seen_at = fields.AwareDateTime(required=True)
    age_s = fields.Float(required=True)
    alive = fields.Boolean(
        required=True, metadata={"description": "Heard of within the last minute."}
    )


class RuntimeSchema(Schema):
    workers = fields.List(fields.Nested(HeartbeatSchema), required=True)
    beat = fields.Nested(HeartbeatSchema, allow_none=True, required=True)
    broker_up = fields.Boolean(required=True)
