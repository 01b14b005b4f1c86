"""The etcd client of `kgt publish` and `kgt agent`: reads, writes, transactions, watches, a lease lock, auth setup.

Through etcd3gw (etcd's v3 JSON gateway), plus what it lacks: endpoint failover, deadlines, login and re-login,
txns with a compare, watches that resume and report compaction, a lock that checks it got the lock. Which keys
mean what is the callers' business.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from etcd3gw import exceptions as gw
from etcd3gw.client import Etcd3Client

from toolkit.errors import (
    CommitUnknown,
    Compacted,
    DeadlineExceeded,
    LockTimeout,
    StoreAuthFailed,
    StoreError,
    StorePermissionDenied,
    StoreUnavailable,
)
from toolkit.retry import poll

log = logging.getLogger(__name__)
T = TypeVar("T")
Permission = Literal["read", "readwrite"]
UserSpec = tuple[str, Sequence[tuple[str, Permission]]]  # password, [(key prefix, permission)]
# etcd no longer takes our token: it expired (a simple token lives `--auth-token-ttl` s after its last use, on
# each member apart), auth changed since it was issued, or auth was turned on since we connected.
STALE_TOKEN = ("invalid auth token", "auth store is old", "user name is empty")
# Watches ask the member to end them when it loses its leader, rather than go quiet while cut off.
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
REASONS = r"certificate verify failed: [^('\"]+|connection refused|timed out|connection reset by peer|[^:(]+not known"


@dataclass(frozen=True)
class StoreSettings:
    """Where etcd is and as whom to talk to it: client URLs (`https://10.213.1.11:2379`), the CA for https ones
    (None: the system's), user and password (the value the caller read from a file; not in `repr`), and the
    seconds a request may take on one endpoint."""

    endpoints: tuple[str, ...]
    ca: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 3.0

    def __post_init__(self) -> None:
        for url in self.endpoints or ("",):
            if (u := urlsplit(url)).scheme not in ("http", "https") or not (u.hostname and u.port) or u.path:
                raise ValueError(f"etcd endpoint {url!r}: not http(s)://HOST:PORT")
        if (self.user is None) != (self.password is None):
            raise ValueError("etcd: a user needs a password and a password a user")


@dataclass(frozen=True)
class Item:
    """A key's value and the revision that last modified it."""

    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class Event:
    """One change a watch saw: a `put` with the new value, or a `delete` (empty value), at `revision`."""

    kind: Literal["put", "delete"]
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class Committed:
    """What `Store.commit` did: whether the compare held, so that every write happened, and the revision after."""

    succeeded: bool
    revision: int


@dataclass
class _EndpointDown(Exception):
    """This endpoint did not answer; `maybe_sent`: the request may have reached etcd all the same."""

    reason: str
    maybe_sent: bool


class _StaleToken(StoreAuthFailed):
    """etcd no longer takes our token: log in again (and if it still does not, the user sees this)."""


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _prefix_range(prefix: str) -> dict[str, str]:
    """etcd's range of the keys under a prefix: from it to it with its last byte + 1 (trailing 0xff dropped)."""
    raw = prefix.encode("utf-8", "surrogateescape").rstrip(b"\xff")
    return {"key": _b64(prefix), "range_end": _b64(raw[:-1] + bytes([raw[-1] + 1]) if raw else b"\0")}


def _item(kv: Mapping[str, Any]) -> Item:
    return Item(_unb64(kv.get("value")), int(kv["mod_revision"]))


def _etcd_message(exc: gw.Etcd3Exception) -> str:
    """etcd's own words in an error answer (`{"error": ..., "code": ...}`), else the start of the body."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(json.loads(exc.detail_text or "")["message"])
    return (exc.detail_text or str(exc) or exc.__class__.__name__).strip()[:200]


def _down(exc: BaseException) -> _EndpointDown:
    """Why an endpoint did not answer, in a few words; `exc` is requests' error or etcd3gw's wrapping of it."""
    cause = exc if isinstance(exc, requests.RequestException) else exc.__context__
    if cause is None and isinstance(exc, gw.Etcd3Exception):  # etcd's 503 or 504: no leader, request timed out
        return _EndpointDown(_etcd_message(exc), maybe_sent=True)
    pool_error = cause.args[0] if isinstance(cause, requests.ConnectionError) and cause.args else None
    never_connected = isinstance(getattr(pool_error, "reason", None), urllib3.exceptions.NewConnectionError)
    found = re.search(REASONS, str(cause or exc), re.IGNORECASE)
    reason = found.group(0).strip().lower() if found else f"connection failed ({(cause or exc).__class__.__name__})"
    not_sent = never_connected or isinstance(cause, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError)
    return _EndpointDown(reason, maybe_sent=not not_sent)


class Store:
    """A connection to one etcd cluster, shared by threads (a lock's keepalive thread uses it too).

    A request goes to the endpoint that answered last, on to the next when one refuses or times out (a
    compare-and-write that went out unanswered raises CommitUnknown instead); StoreUnavailable: none answered.
    """

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc from the environment: etcd is dialled directly
        self._session.verify = str(settings.ca) if settings.ca else True
        new = functools.partial(Etcd3Client, timeout=settings.timeout, api_path="/v3/", session=self._session)
        self._clients = [new(u.hostname or "", u.port or 0, u.scheme) for u in map(urlsplit, settings.endpoints)]
        self._first = 0
        self._token: str | None = None
        self._login_needed = settings.user is not None
        self._auth_lock = threading.Lock()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, key: str) -> Item | None:
        """The value of `key` and its mod_revision; None when there is no such key."""
        kvs = self._call("/kv/range", {"key": _b64(key)}, what=f"get {key}").get("kvs", [])
        return _item(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str) -> tuple[dict[str, Item], int]:
        """Every key under `prefix`, and the revision of the read: watch from it + 1 to miss nothing after."""
        answer = self._call("/kv/range", _prefix_range(prefix), what=f"get {prefix}*")
        items = {_unb64(kv["key"]).decode("utf-8", "surrogateescape"): _item(kv) for kv in answer.get("kvs", [])}
        return items, int(answer["header"]["revision"])

    def put(self, key: str, value: bytes) -> int:
        """Set `key` to `value`; the revision of the write."""
        answer = self._call("/kv/put", {"key": _b64(key), "value": _b64(value)}, what=f"put {key}")
        return int(answer["header"]["revision"])

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`; how many there were."""
        return int(self._call("/kv/deleterange", _prefix_range(prefix), what=f"delete {prefix}*").get("deleted", 0))

    def commit(
        self, puts: Mapping[str, bytes], deletes: Iterable[str] = (), if_revision: tuple[str, int] | None = None
    ) -> Committed:
        """Write `puts` and delete the keys `deletes` in one etcd transaction: all of it, or nothing.

        `if_revision=(key, rev)`: only while `key`'s mod_revision is still `rev` (0: no such key), so a publisher
        sees that another one wrote since it read; `(lock.key, lock.revision)`: only while it holds the lock.
        etcd caps a txn's operations (`--max-txn-ops`, 128 by default).
        """
        deletes = list(deletes)
        if both := set(deletes) & puts.keys():
            raise ValueError(f"etcd commit: keys both put and deleted: {sorted(both)}")
        ops = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts.items()]
        ops += [{"request_delete_range": {"key": _b64(k)}} for k in deletes]
        key, rev = if_revision or ("", 0)
        compare = [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(rev)}]
        body = {"compare": compare if if_revision else [], "success": ops, "failure": []}
        answer = self._call("/kv/txn", body, what=f"commit of {len(ops)} changes", idempotent=not if_revision)
        return Committed(bool(answer.get("succeeded")), int(answer["header"]["revision"]))

    def watch(self, prefix: str, start_revision: int, timeout: float) -> Iterator[Event]:
        """Every change under `prefix` from `start_revision` on, in revision order, for `timeout` seconds.

        A broken stream is opened again on the next endpoint from the revision after the last event: etcd sends
        a revision's events in one message (no fragments asked for), so none is lost or repeated. Compacted:
        read it all again, watch from that read's revision + 1. StoreUnavailable: resume from the last event's + 1.
        """
        deadline, next_revision = time.monotonic() + timeout, start_revision
        while time.monotonic() < deadline:
            stream = self._open_watch(prefix, next_revision)
            try:
                for event in stream.events(next_revision, deadline):
                    next_revision = event.revision + 1
                    yield event
            except _EndpointDown as down:
                log.info("etcd watch %s*: %s; resuming from revision %d", prefix, down.reason, next_revision)
            finally:
                stream.response.close()

    def lock(self, key: str, *, ttl: int = 10, timeout: float = 30.0) -> Lock:
        """A lock on `key`, not taken yet (`with store.lock(key) as lock:`, or `acquire()`); see Lock."""
        return Lock(self, key, ttl=ttl, timeout=timeout)

    def _call(self, path: str, body: Mapping[str, Any], *, what: str, idempotent: bool = True, ok: str = "") -> Any:
        """POST `body` to the gateway's `/v3{path}` on the first endpoint that answers; its answer (see _post)."""
        return self._failover(lambda c: self._post(c, path, body, what, ok=ok), what=what, idempotent=idempotent)

    def _failover(self, attempt: Callable[[Etcd3Client], T], *, what: str, idempotent: bool = True) -> T:
        """`attempt` on each endpoint in turn until one answers; a refused token: log in, try once more there."""
        failures = []
        for step in range(len(self._clients)):
            index = (self._first + step) % len(self._clients)
            client = self._clients[index]
            try:
                if self._login_needed:
                    self._login(client)
                try:
                    result = attempt(client)
                except _StaleToken:
                    self._login(client)
                    result = attempt(client)
            except _EndpointDown as down:
                if down.maybe_sent and not idempotent:
                    raise CommitUnknown(f"etcd {what}: outcome unknown ({client.base_url}: {down.reason})") from None
                failures.append(f"{client.base_url}: {down.reason}")
                continue
            self._first = index
            return result
        raise StoreUnavailable(f"etcd {what}: no endpoint answered ({'; '.join(failures)})")

    def _login(self, client: Etcd3Client) -> None:
        """Get a token for our user and password (etcd3gw has no login); none while etcd's auth is off."""
        user, password = self.settings.user, self.settings.password
        if user is None or password is None:
            raise StoreAuthFailed("etcd asks for a login and no etcd user is configured")
        with self._auth_lock:  # without our token: etcd refuses even a login that carries a stale one
            body, off = {"name": user, "password": password}, "authentication is not enabled"
            answer = self._post(client, "/auth/authenticate", body, f"login as {user}", anon=True, ok=off)
            self._token, self._login_needed = answer.get("token"), False

    def _post(self, client: Etcd3Client, path: str, body: Any, what: str, *, anon: bool = False, ok: str = "") -> Any:
        """One request to one endpoint: etcd's answer, `{}` for an error that says `ok`; _EndpointDown, a StoreError."""
        try:
            return dict(client.post(client.get_url(path), json=body, headers={} if anon else self._headers()))
        except (gw.ConnectionFailedError, gw.ConnectionTimeoutError) as exc:
            raise _down(exc) from exc
        except gw.Etcd3Exception as exc:
            message = _etcd_message(exc)
            if ok and ok in message:
                return {}
            raise self._refusal(message, what) from None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self._token} if self._token else {}

    def _refusal(self, message: str, what: str) -> Exception:
        """The exception for etcd's refusal `message` of the request `what`."""
        if any(words in message for words in STALE_TOKEN):
            return _StaleToken(f"etcd {what}: {message}, even right after a login")
        if "permission denied" in message:
            return StorePermissionDenied(f"etcd refused {what} to user {self.settings.user!r}: permission denied")
        if "authentication failed" in message:
            return StoreAuthFailed(f"etcd {what}: wrong user name or password")
        return StoreError(f"etcd {what}: {message}")

    def _open_watch(self, prefix: str, revision: int) -> _WatchStream:
        """A watch stream from `revision`, on the first endpoint that confirms it created the watch."""
        create = _prefix_range(prefix) | {"start_revision": str(revision)}
        what = f"watch {prefix}*"
        return self._failover(lambda client: self._watch_stream(client, {"create_request": create}, what), what=what)

    def _watch_stream(self, client: Etcd3Client, body: Mapping[str, Any], what: str) -> _WatchStream:
        """Open one watch stream; etcd answers `created` first, or `canceled` with its reason."""
        limit, url, headers = self.settings.timeout, client.get_url("/watch"), self._headers() | REQUIRE_LEADER
        try:
            response = client.session.post(url, json=body, headers=headers, stream=True, timeout=(limit, limit))
        except requests.RequestException as exc:
            raise _down(exc) from exc
        stream = _WatchStream(response)
        try:
            first = stream.next(time.monotonic() + limit)
            if first is None:
                raise _EndpointDown("timed out", maybe_sent=True)
            if first.get("canceled"):
                raise self._refusal(str(first.get("cancel_reason", "watch canceled")), what)
        except BaseException:
            stream.response.close()
            raise
        return stream


class _WatchStream:
    """One watch stream of the gateway: a chunked answer, one JSON message a line."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self._lines = response.iter_lines(chunk_size=None)

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next message's `result`, None once `deadline` passes; _EndpointDown when the stream broke."""
        while (left := deadline - time.monotonic()) > 0:
            # Each read waits until the deadline at most: urllib3 sets the socket's timeout only once.
            sock = getattr(getattr(self.response.raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(left)
            try:
                line = next(self._lines)
            except StopIteration:
                raise _EndpointDown("stream ended", maybe_sent=True) from None
            except requests.RequestException as exc:
                if isinstance(exc, requests.ConnectionError) and deadline - time.monotonic() < 0.05:
                    return None
                raise _down(exc) from exc
            if line.strip():
                try:  # a stream that breaks inside etcd ends with `{"error": ...}`
                    return dict(json.loads(line)["result"])
                except (ValueError, KeyError, TypeError):
                    raise _EndpointDown(f"watch stream: {line[:200]!r}", maybe_sent=True) from None
        return None

    def events(self, revision: int, deadline: float) -> Iterator[Event]:
        """The events until `deadline`; Compacted when etcd cancels the watch from `revision` for compaction."""
        while (result := self.next(deadline)) is not None:
            if result.get("canceled"):
                if int(result.get("compact_revision", 0)):
                    raise Compacted(revision, int(result["compact_revision"]))
                raise _EndpointDown(f"watch canceled: {result.get('cancel_reason', 'no reason given')}", True)
            for raw in result.get("events", []):
                kv, key = raw["kv"], _unb64(raw["kv"]["key"]).decode("utf-8", "surrogateescape")
                kind: Literal["put", "delete"] = "delete" if raw.get("type") == "DELETE" else "put"
                yield Event(kind, key, _unb64(kv.get("value")), int(kv["mod_revision"]))


class Lock:
    """A lock held through a lease: `acquire` creates `key` with it in a txn comparing create_revision with 0.

    It polls while another holds the key, up to `timeout` s (then LockTimeout). A thread refreshes the lease every
    ttl/3 s; `lost` is set when one fails or the lease is gone: stop then. A dead holder's key goes `ttl` s later.
    `revision` fences writes: `commit(..., if_revision=(lock.key, lock.revision))`.
    """

    def __init__(self, store: Store, key: str, *, ttl: int, timeout: float) -> None:
        self.store, self.key, self.ttl, self.timeout = store, key, ttl, timeout
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.lost = threading.Event()
        self.lease_id = self.revision = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = "someone"

    def acquire(self) -> Lock:
        """Take the lock, waiting up to `timeout` seconds, and start the keepalives."""
        try:
            poll(self._try, timeout=self.timeout, what=f"lock {self.key}", interval=0.05, max_interval=0.5, retry_on=())
        except DeadlineExceeded:
            raise LockTimeout(f"lock {self.key}: still held by {self._seen} after {self.timeout:g}s") from None
        self.lost.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep_alive, name=f"keepalive {self.key}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the keepalives and revoke the lease, deleting the key; a failure is logged (the TTL frees it)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.lease_id:
            try:
                self._revoke(self.lease_id)
            except StoreError as exc:
                log.warning("lock %s: not released (%s); etcd frees it within %d s", self.key, exc, self.ttl)
            self.lease_id = 0

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _try(self) -> bool:
        """One attempt: a lease, and the txn that creates the key with it unless the key exists."""
        lease_id = int(self.store._call("/lease/grant", {"TTL": self.ttl}, what=f"lease for lock {self.key}")["ID"])
        key = _b64(self.key)
        txn = {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": _b64(self.holder), "lease": str(lease_id)}}],
            "failure": [{"request_range": {"key": key}}],
        }
        answer = self.store._call("/kv/txn", txn, what=f"lock {self.key}")
        if answer.get("succeeded"):
            self.lease_id, self.revision = lease_id, int(answer["header"]["revision"])
            return True
        kvs = answer["responses"][0]["response_range"]["kvs"]  # the key exists: the compare failed
        if _unb64(kvs[0].get("value")) == self.holder.encode():  # our own txn, sent twice on failover
            self.lease_id, self.revision = lease_id, int(kvs[0]["create_revision"])
            return True
        self._revoke(lease_id)
        self._seen = _unb64(kvs[0].get("value")).decode("utf-8", "replace")
        return False

    def _revoke(self, lease_id: int) -> None:
        self.store._call("/kv/lease/revoke", {"ID": str(lease_id)}, what=f"revoke lease {lease_id:x}", ok="not found")

    def _keep_alive(self) -> None:
        """Refresh the lease until released; set `lost` and stop when a refresh fails or the lease is gone."""
        while not self._stop.wait(self.ttl / 3):
            try:
                answer = self.store._call("/lease/keepalive", {"ID": str(self.lease_id)}, what=f"keepalive {self.key}")
                alive = int(answer.get("result", {}).get("TTL", 0)) > 0
            except StoreError as exc:
                log.warning("lock %s: keepalive failed: %s", self.key, exc)
                alive = False
            if not alive:
                self.lost.set()
                return


def setup_auth(settings: StoreSettings, root_password: str, users: Mapping[str, UserSpec]) -> None:
    """Create `root` (role root) and the users with their roles, then turn etcd's auth on; run again, it converges.

    `users`: name -> (password, [(key prefix, "read" | "readwrite"), ...]), each granted by a role of its own
    name: exactly those prefixes, a changed password set anew. Talks as root (before auth is on, etcd takes anyone).
    """
    if "root" in users:
        raise ValueError("etcd auth: `root` is set up from root_password, not from users")
    with Store(replace(settings, user="root", password=root_password)) as store:
        store._call("/auth/role/add", {"name": "root"}, what="add role root", ok="already exists")
        _ensure_user(store, "root", root_password)
        store._call("/auth/user/grant", {"user": "root", "role": "root"}, what="grant role root to root")
        for name, (password, grants) in users.items():
            _ensure_user(store, name, password)
            store._call("/auth/role/add", {"name": name}, what=f"add role {name}", ok="already exists")
            _ensure_grants(store, name, grants)
            store._call("/auth/user/grant", {"user": name, "role": name}, what=f"grant role {name} to {name}")
        store._call("/auth/enable", {}, what="enable auth")


def _ensure_user(store: Store, name: str, password: str) -> None:
    """The user exists with `password`, changed only when it no longer logs in (a change ends its tokens)."""
    if store._call("/auth/user/add", {"name": name, "password": password}, what=f"add {name}", ok="already exists"):
        return
    with contextlib.suppress(StoreError):  # a wrong password; or auth still off, and etcd cannot tell
        store._call("/auth/authenticate", {"name": name, "password": password}, what=f"login as {name}")
        return
    store._call("/auth/user/changepw", {"name": name, "password": password}, what=f"change the password of {name}")


def _ensure_grants(store: Store, role: str, grants: Sequence[tuple[str, Permission]]) -> None:
    """The role grants exactly `grants`: missing or changed ones granted, the others revoked."""
    want = {tuple(_prefix_range(prefix).values()): perm.upper() for prefix, perm in grants}
    perms = store._call("/auth/role/get", {"role": role}, what=f"get role {role}").get("perm", [])
    have = {(p["key"], p.get("range_end", "")): p.get("permType", "READ") for p in perms}  # READ is 0: left out
    for key, end in have.keys() - want.keys():
        store._call("/auth/role/revoke", {"role": role, "key": key, "range_end": end}, what=f"revoke from {role}")
    for (key, end), kind in want.items():
        if have.get((key, end)) != kind:
            perm = {"permType": kind, "key": key, "range_end": end}
            store._call("/auth/role/grant", {"name": role, "perm": perm}, what=f"grant {kind} to role {role}")
