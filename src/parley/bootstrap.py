"""`parley admin bootstrap`: a user, an organisation and an admin API key, for scripts and demos."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from parley.accounts.directory import AccountDirectory
from parley.context import AppContext
from parley.errors import InvalidRequest
from parley.kit.passwords import password_problem
from parley.orgs.roles import Role, Scope
from parley.principal import Actor, OrgContext


@dataclass(frozen=True)
class Bootstrapped:
    user_id: str
    email: str
    org_id: str
    org_name: str
    api_key_id: str
    api_key: str
    user_created: bool
    org_created: bool


async def bootstrap(ctx: AppContext, *, email: str, password: str, org_name: str) -> Bootstrapped:
    org_name = org_name.strip()  # as the organisation stores it, so a rerun finds it
    async with ctx.db.session() as session:
        user = await AccountDirectory().find_by_email(session, email)
        user_created = user is None
        if user is None:
            try:
                validate_email(email.strip(), check_deliverability=False)
            except EmailNotValidError as exc:
                raise InvalidRequest(
                    f"Not a valid email address: {exc}", code="invalid_email", param="email"
                ) from exc
            if problem := password_problem(password, email=email):
                raise InvalidRequest(problem, code="weak_password", param="password")
            user = await ctx.accounts.create_user(session, email=email, password=password)
        org = next(
            (
                o
                for o, m in await ctx.orgs.list_for_user(session, user.id)
                if o.name == org_name and m.role == Role.OWNER
            ),
            None,
        )
        org_created = org is None
        if org is None:
            org = await ctx.orgs.create(session, owner=user, name=org_name, client_ip=None)
        if user.default_org_id is None:
            user.default_org_id = org.id
        owner = OrgContext(org_id=org.id, actor=Actor(user_id=user.id), role=Role.OWNER)
        created = await ctx.keys.create(
            session, owner, name="bootstrap", scopes=list(Scope), expires_at=None
        )
        return Bootstrapped(
            user_id=user.id,
            email=user.email,
            org_id=org.id,
            org_name=org.name,
            api_key_id=created.key.id,
            api_key=created.secret,
            user_created=user_created,
            org_created=org_created,
        )
