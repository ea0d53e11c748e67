"""Sign-up, login, refresh and the caller's own account."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

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


CODE = validate.Length(min=1, max=20)


class LoginMfaSchema(StrictSchema):
    challenge = Text(required=True, load_only=True, validate=validate.Length(min=1, max=200))
    code = Text(load_only=True, validate=CODE, metadata={"description": "The 6-digit TOTP code."})
    recovery_code = Text(
        load_only=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "One of your recovery codes (each works once)."},
    )

    @validates_schema
    def _one_factor(self, data: dict[str, object], **kwargs: object) -> None:
        if ("code" in data) == ("recovery_code" in data):
            raise ValidationError("Give either code or recovery_code.", "code")


class TotpCodeSchema(StrictSchema):
    code = Text(required=True, load_only=True, validate=CODE)


class TotpDisableSchema(StrictSchema):
    code = Text(load_only=True, validate=CODE)
    password = Text(load_only=True, validate=validate.Length(max=256))

    @validates_schema
    def _one_proof(self, data: dict[str, object], **kwargs: object) -> None:
        if ("code" in data) == ("password" in data):
            raise ValidationError("Give either a current code or your password.", "code")


class TotpEnrolmentSchema(Schema):
    secret = Text(
        required=True, metadata={"description": "The base32 shared secret: shown now only."}
    )
    otpauth_uri = Text(required=True, metadata={"description": "The same, for a QR code."})


class RecoveryCodesSchema(Schema):
    recovery_codes = fields.List(
        Text(),
        required=True,
        metadata={"description": "One-time codes for when the device is lost: shown now only."},
    )


class MfaStatusSchema(Schema):
    totp = Text(required=True, validate=validate.OneOf(["off", "pending", "on"]))
    recovery_codes_left = fields.Integer(required=True)


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
