"""Signing in (with the second factor once the person has one), signing out, the org picker
and the person's own password: the services of ``POST /auth/login``, ``/auth/login/mfa``,
``/auth/logout`` and ``/auth/password``, with the same throttles."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from api.context import hub
from api.quota import charge_login, charge_password_check
from api.throttle import Action, charge
from console import session as cookie
from console.scope import bp, public, signed_in_only, tx
from fusion.auth import mfa, sessions
from fusion.auth.errors import AuthenticationFailed
from fusion.orgs import service as orgs

REFUSED = "Those details did not match an active account."


def _next() -> str:
    target = request.values.get("next", "")
    ok = target.startswith("/console/") and "//" not in target and "\\" not in target
    return target if ok else url_for("console.home")


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return render_template("console/login.html", next=_next())
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not email or not password:
        flash("Enter your email and password.", "error")
        return render_template("console/login.html", next=_next(), email=email), 422
    charge(Action.LOGIN)
    charge_login(email)
    try:
        with hub().database.system_session() as db:
            outcome = sessions.login(db, hub().settings, email=email, password=password)
    except AuthenticationFailed:
        flash(REFUSED, "error")
        return render_template("console/login.html", next=_next(), email=email), 401
    if isinstance(outcome, mfa.MfaChallenge):
        session["challenge"], session["challenge_email"] = outcome.challenge, email
        return redirect(url_for("console.login_mfa", next=_next()), code=303)
    cookie.begin(outcome, email)
    return redirect(_next(), code=303)


@bp.route("/login/mfa", methods=["GET", "POST"])
@public
def login_mfa() -> str | Response | tuple[str, int]:
    challenge = session.get("challenge")
    if not isinstance(challenge, str):
        return redirect(url_for("console.login"), code=303)
    if request.method == "GET":
        return render_template("console/mfa.html", next=_next())
    code = request.form.get("code", "").strip() or None
    recovery = request.form.get("recovery_code", "").strip() or None
    with hub().database.system_session() as db:
        pair = sessions.login_second_factor(
            db, hub().settings, challenge=challenge, code=code, recovery_code=recovery
        )
    if pair is None:  # the wrong code is counted (committed above)
        flash("That code was refused.", "error")
        return render_template("console/mfa.html", next=_next()), 401
    cookie.begin(pair, str(session.get("challenge_email", "")))
    return redirect(_next(), code=303)


@bp.post("/logout")
@public
def logout() -> Response:
    person = cookie.signed_in()
    if person is not None:
        with hub().database.system_session() as db:
            sessions.logout(db, person.claims())
    session.clear()
    return redirect(url_for("console.login"), code=303)


@bp.get("/")
@signed_in_only
def home() -> str | Response:
    """The person's orgs: straight to the dashboard of the only one, else a picker."""
    mine = orgs.memberships(tx(), g.person.user_id)
    if len(mine) == 1:
        return redirect(url_for("console.dashboard", org_id=mine[0].org_id))
    return render_template("console/home.html", memberships=mine)


@bp.route("/account", methods=["GET", "POST"])
@signed_in_only
def account() -> str | Response:
    if request.method == "GET":
        return render_template("console/account.html")
    charge_password_check(g.person.user_id)
    pair = sessions.change_password(
        tx(),
        hub().settings,
        g.person.claims(),
        current_password=request.form.get("current_password", ""),
        new_password=request.form.get("new_password", ""),
    )
    cookie.begin(pair, g.person.email)
    flash("Password changed: every other session of yours has ended.", "ok")
    return redirect(url_for("console.account"), code=303)


@bp.get("/switch")
@signed_in_only
def switch_org() -> Response:
    """The org switcher's form: to the chosen org's dashboard (membership is checked there)."""
    mine = {str(m.org_id): m for m in orgs.memberships(tx(), g.person.user_id)}
    chosen = mine.get(request.args.get("org_id", ""))
    if chosen is None:
        return redirect(url_for("console.home"), code=303)
    return redirect(url_for("console.dashboard", org_id=chosen.org_id), code=303)
