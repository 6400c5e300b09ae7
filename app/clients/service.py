"""API clients and their keys."""

from datetime import timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.clients.models import ApiClient, ApiKey
from app.clients.schemas import ClientCreate
from app.core.audit import record
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.pagination import PageParams, SortKey, Window, keyset_window
from app.core.security import LAST_USED_RESOLUTION_SECONDS, Principal, hash_key, key_hint, new_key
from app.core.timezone import utcnow


def _new_key_for(client: ApiClient) -> tuple[ApiKey, str]:
    secret = new_key()
    return ApiKey(client=client, key_hash=hash_key(secret), hint=key_hint(secret)), secret


async def _unit_exists(session: AsyncSession, code: str) -> bool:
    # The unit is named through the client's own foreign key: access sits below the domains and
    # knows the units table only as the target of that key.
    (unit_key,) = ApiClient.__table__.c.unit_code.foreign_keys
    return await session.scalar(select(unit_key.column).where(unit_key.column == code)) is not None


async def create_client(
    session: AsyncSession, data: ClientCreate, actor: Principal | None
) -> tuple[ApiClient, str]:
    """A new client and its first key (the secret, shown once); ``actor`` None: the command line."""
    if data.unit_code is not None and not await _unit_exists(session, data.unit_code):
        raise InvalidInput.for_field(
            "body.unit_code", f"Unit {data.unit_code!r} does not exist", "unknown_reference"
        )
    if await session.scalar(select(ApiClient.id).where(ApiClient.name == data.name)) is not None:
        raise Conflict(f"A client named {data.name!r} already exists")
    client = ApiClient(
        name=data.name, scopes=[scope.value for scope in data.scopes], unit_code=data.unit_code
    )
    client.keys = []
    key, secret = _new_key_for(client)
    session.add_all([client, key])
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A client named {data.name!r} already exists") from exc
    await record(
        session, actor, "create", "client", client.id, {"name": client.name, "scopes": client.scopes}
    )
    return client, secret


async def _record_key(
    session: AsyncSession, actor: Principal | None, action: str, client: ApiClient, key: ApiKey
) -> None:
    await record(session, actor, action, "client_key", key.id, {"client_id": client.id})


async def add_key(session: AsyncSession, client: ApiClient, actor: Principal | None) -> tuple[ApiKey, str]:
    key, secret = _new_key_for(client)
    session.add(key)
    await session.flush()
    await _record_key(session, actor, "create", client, key)
    return key, secret


async def revoke_key(
    session: AsyncSession, client: ApiClient, key_id: int, actor: Principal | None
) -> ApiKey:
    """Revoke the client's key; recorded even when it was revoked already."""
    key = next((key for key in client.keys if key.id == key_id), None)
    if key is None:
        raise NotFound(f"Client {client.id} has no key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    await _record_key(session, actor, "revoke", client, key)
    return key


async def revoke_all_keys(session: AsyncSession, client: ApiClient, actor: Principal | None) -> list[ApiKey]:
    """Revoke every active key of the client; the keys revoked now are returned."""
    revoked = [key for key in client.keys if key.revoked_at is None]
    for key in revoked:
        key.revoked_at = utcnow()
    await session.flush()
    for key in revoked:
        await _record_key(session, actor, "revoke", client, key)
    return revoked


_WITH_KEYS = selectinload(ApiClient.keys)


async def get_client(session: AsyncSession, client_id: int) -> ApiClient:
    client = await session.scalar(select(ApiClient).where(ApiClient.id == client_id).options(_WITH_KEYS))
    if client is None:
        raise NotFound(f"Client {client_id} does not exist")
    return client


async def get_client_by_name(session: AsyncSession, name: str) -> ApiClient:
    client = await session.scalar(select(ApiClient).where(ApiClient.name == name).options(_WITH_KEYS))
    if client is None:
        raise NotFound(f"Client {name!r} does not exist")
    return client


_CLIENT_ORDER = SortKey([ApiClient.id])


async def list_clients(session: AsyncSession, page: PageParams) -> Window[ApiClient]:
    query = select(ApiClient).options(_WITH_KEYS)
    return await keyset_window(session, query, _CLIENT_ORDER, page, lambda client: [client.id])


_TOUCH_UNLESS_LOCKED = text(
    "UPDATE api_keys SET last_used_at = :now "
    "WHERE id = (SELECT id FROM api_keys WHERE id = :key_id FOR UPDATE SKIP LOCKED)"
)


async def authenticate(session: AsyncSession, secret: str) -> Principal | None:
    """The client behind a key, or None when the key is unknown or revoked."""
    row = (
        await session.execute(
            select(
                ApiKey.id,
                ApiKey.last_used_at,
                ApiClient.id,
                ApiClient.name,
                ApiClient.scopes,
                ApiClient.unit_code,
            )
            .join(ApiClient, ApiKey.client_id == ApiClient.id)
            .where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        return None
    key_id, last_used_at, client_id, name, scopes, unit_code = row
    now = utcnow()
    if last_used_at is None or now - last_used_at > timedelta(seconds=LAST_USED_RESOLUTION_SECONDS):
        # In the request's transaction (a second connection per request can exhaust the pool
        # under load), but never waiting: a key another request is touching is skipped.
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(_TOUCH_UNLESS_LOCKED, {"key_id": key_id, "now": now})
        else:
            await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    return Principal(client_id=client_id, name=name, scopes=frozenset(scopes), unit_code=unit_code)
