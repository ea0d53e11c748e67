"""Sign-up, login, refresh and the caller's own account."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from fusion.auth.passwords import MAX_LENGTH, MIN_LENGTH
from schemas.common import StrictSchema, Text


class SignupSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = Text(
        required=True, load_only=True, validate=validate.Length(min=MIN_LENGTH, max=MAX_LENGTH)
    )
    display_name = Text(load_default="", validate=validate.Length(max=200))


class LoginSchema(StrictSchema):
    email = Text(required=True, validate=validate.Length(min=1, max=320))
    password = Text(required=True, load_only=True, validate=validate.Length(max=256))


class RefreshSchema(StrictSchema):
    refresh_token = Text(required=True, validate=validate.Length(min=1, max=200))


class PasswordChangeSchema(StrictSchema):
    current_password = Text(required=True, load_only=True, validate=validate.Length(max=256))
    new_password = Text(
        required=True, load_only=True, validate=validate.Length(min=MIN_LENGTH, max=MAX_LENGTH)
    )


class TokenPairSchema(Schema):
    token_type = fields.Constant("Bearer", required=True)
    access_token = Text(required=True)
    access_expires_at = fields.AwareDateTime(required=True)
    refresh_token = Text(required=True)
    refresh_expires_at = fields.AwareDateTime(required=True)
    user_id = fields.UUID(required=True)


class UserSchema(Schema):
    id = fields.UUID(required=True)
    email = Text(required=True)
    display_name = Text(required=True)
    created_at = fields.AwareDateTime(required=True)


class MembershipSchema(Schema):
    org_id = fields.UUID(required=True)
    name = Text(required=True)
    slug = Text(required=True)
    role = Text(required=True)
    joined_at = fields.AwareDateTime(required=True)


class OpenInvitationSchema(Schema):
    """An invitation addressed to the caller's email: accept or decline it under
    ``/me/invitations/{id}``."""

    id = fields.UUID(required=True)
    org_id = fields.UUID(required=True)
    org_name = Text(required=True)
    role = Text(required=True)
    invited_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True)


class MeSchema(Schema):
    user = fields.Nested(UserSchema, required=True)
    orgs = fields.List(fields.Nested(MembershipSchema), required=True)
    invitations = fields.List(fields.Nested(OpenInvitationSchema), required=True)
