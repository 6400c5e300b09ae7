"""Authentication and function-level authorization for every protected route."""

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from app.clients import service
from app.clients.models import ApiClient
from app.core.db import RowId, SessionDep
from app.core.errors import Forbidden, Unauthorized
from app.core.limits import RateLimiter, quotas_of
from app.core.security import Principal, Scope

bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    description="An API key: `Authorization: Bearer tthc_…`. Created with `tthc clients create`.",
    auto_error=False,
)


async def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("This operation needs an API key: send `Authorization: Bearer <key>`")
    principal = await service.authenticate(session, credentials.credentials)
    if principal is None:
        raise Unauthorized("The API key is unknown or revoked", error="invalid_token")
    request.state.client_name = principal.name
    missing = [scope for scope in security_scopes.scopes if not principal.has(scope)]
    if missing:
        raise Forbidden(f"This operation needs the scope {', '.join(missing)}")
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.hit("client", request.method, str(principal.client_id), quotas_of(request.scope))
    return principal


def require(scope: Scope) -> Any:
    """A dependency that authenticates the caller and demands ``scope`` (declared in OpenAPI)."""
    return Security(authenticate, scopes=[scope.value])


def require_any(*scopes: Scope) -> Any:
    """A dependency that authenticates the caller and demands at least one of ``scopes``."""

    async def any_of(principal: Annotated[Principal, Security(authenticate)]) -> Principal:
        if not any(principal.has(scope) for scope in scopes):
            raise Forbidden(f"This operation needs one of the scopes {', '.join(scopes)}")
        return principal

    return Depends(any_of)


AdminDep = Annotated[Principal, require(Scope.admin)]


async def client_by_id(session: SessionDep, client_id: RowId) -> ApiClient:
    return await service.get_client(session, client_id)


ClientDep = Annotated[ApiClient, Depends(client_by_id)]
