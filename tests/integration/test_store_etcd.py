"""toolkit/store.py against a real etcd (Debian's etcd-server, 3.4) on 127.0.0.1.

Every etcd is started by the `servers` fixture on free ports with its data in a temporary directory, waited
for on /health, and ended by its pid when the module is done (a test may stop and start its own before that).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from toolkit import tlsclient
from toolkit.errors import (
    CommitUnknown,
    Compacted,
    LockTimeout,
    StoreAuthFailed,
    StorePermissionDenied,
    StoreUnavailable,
)
from toolkit.pki import authority
from toolkit.pki.names import Names
from toolkit.retry import poll
from toolkit.store import Event, Store, StoreSettings, setup_auth

ROOT = Path(__file__).resolve().parents[2]
ETCD, ETCDCTL = shutil.which("etcd"), shutil.which("etcdctl")
ROOT_PASSWORD = "root-s3cret"
READER_PASSWORD = "reader-s3cret"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (ETCD and ETCDCTL), reason="needs etcd and etcdctl: apt-get install -y etcd-server etcd-client"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Etcd:
    """One etcd member on 127.0.0.1; stopped and started again on the same ports and data."""

    def __init__(self, base: Path, flags: tuple[str, ...], tls: tuple[Path, Path, Path] | None) -> None:
        self.base, self.flags, self.tls = base, flags, tls
        self.port, self.peer_port = free_port(), free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        tls = ["--cert-file", str(self.tls[0]), "--key-file", str(self.tls[1])] if self.tls else []
        args = [str(ETCD), "--name", "kgt-test", "--data-dir", str(self.base / "data"), "--logger", "zap"]
        args += ["--listen-client-urls", self.url, "--advertise-client-urls", self.url, "--log-level", "warn"]
        args += [
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"kgt-test={peer}",
        ]
        with (self.base / "etcd.log").open("ab") as log:
            self.proc = subprocess.Popen([*args, *tls, *self.flags], stdout=log, stderr=subprocess.STDOUT)
        poll(self.healthy, timeout=20, what=f"etcd at {self.url}", every=0.1, retry_on=(OSError,))

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited {self.proc.returncode}: {(self.base / 'etcd.log').read_text()[-2000:]}")
        conn = tlsclient.http_connection("127.0.0.1", self.port, 1.0, self.tls[2] if self.tls else None)
        try:
            conn.request("GET", "/health")
            return b'"true"' in conn.getresponse().read()
        finally:
            conn.close()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def settings(self, **changes: Any) -> StoreSettings:
        return dataclasses.replace(StoreSettings((self.url,), timeout=2.0), **changes)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Etcd]]:
    """Start an etcd with extra flags (and TLS: cert, key, CA); all of them are ended at the module's end."""
    started: list[Etcd] = []

    def start(*flags: str, tls: tuple[Path, Path, Path] | None = None) -> Etcd:
        server = Etcd(tmp_path_factory.mktemp("etcd"), flags, tls)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def etcd(servers: Callable[..., Etcd]) -> Etcd:
    return servers()


@pytest.fixture
def store(etcd: Etcd) -> Iterator[Store]:
    with Store(etcd.settings()) as opened:
        yield opened


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"/test/{request.node.name}/"


def test_put_get_prefix_and_delete(store: Store, prefix: str) -> None:
    first = store.put(f"{prefix}a", b"1")
    second = store.put(f"{prefix}b", b"\x00\xff binary")
    store.put(prefix.rstrip("/") + "0", b"next to the prefix, not under it")
    item = store.get(f"{prefix}a")
    assert item is not None and item.value == b"1" and item.mod_revision == first
    assert store.get(f"{prefix}missing") is None
    items, revision = store.get_prefix(prefix)
    assert {key: i.value for key, i in items.items()} == {f"{prefix}a": b"1", f"{prefix}b": b"\x00\xff binary"}
    assert revision > second
    assert store.delete_prefix(prefix) == 2
    assert store.get_prefix(prefix)[0] == {}
    assert store.get(prefix.rstrip("/") + "0") is not None


def test_commit_is_one_transaction_and_its_compare_guards_it(store: Store, prefix: str) -> None:
    marker, old = f"{prefix}marker", f"{prefix}old"
    created = store.commit({marker: b"v1", old: b"x"}, if_revision=(marker, 0))  # 0: only if it does not exist
    assert created.succeeded
    assert not store.commit({marker: b"again"}, if_revision=(marker, 0)).succeeded
    done = store.commit({marker: b"v2", f"{prefix}new": b"n"}, deletes=[old], if_revision=(marker, created.revision))
    assert done.succeeded and done.revision == created.revision + 1
    items, _ = store.get_prefix(prefix)
    assert {k: v.value for k, v in items.items()} == {marker: b"v2", f"{prefix}new": b"n"}
    assert all(v.mod_revision == done.revision for v in items.values())  # one txn: one revision
    stale = store.commit({marker: b"v3", f"{prefix}other": b"o"}, deletes=[f"{prefix}new"], if_revision=(marker, 1))
    assert not stale.succeeded and stale.revision == done.revision
    assert store.get_prefix(prefix)[0] == items  # the failed compare wrote nothing
    with pytest.raises(ValueError, match="both put and deleted"):
        store.commit({marker: b"x"}, deletes=[marker])


def events_of(watch: Iterator[Event]) -> list[tuple[str, str, bytes]]:
    return [(e.kind, e.key, e.value) for e in watch]


def test_watch_from_an_old_revision_gets_every_event(store: Store, prefix: str) -> None:
    start = store.put(f"{prefix}a", b"1")
    store.put("/elsewhere", b"not under the prefix")
    store.commit({f"{prefix}b": b"2", f"{prefix}c": b"3"}, deletes=[f"{prefix}a"])
    store.delete_prefix(f"{prefix}b")
    store.put(f"{prefix}c", b"4")
    began = time.monotonic()
    seen = events_of(store.watch(prefix, start, timeout=1.0))
    assert 1.0 <= time.monotonic() - began < 2.0
    assert seen == [
        ("put", f"{prefix}a", b"1"),
        ("put", f"{prefix}b", b"2"),
        ("put", f"{prefix}c", b"3"),
        ("delete", f"{prefix}a", b""),
        ("delete", f"{prefix}b", b""),
        ("put", f"{prefix}c", b"4"),
    ]


def test_watch_sees_changes_made_while_it_runs(store: Store, etcd: Etcd, prefix: str) -> None:
    _, revision = store.get_prefix(prefix)

    def write() -> None:
        with Store(etcd.settings()) as writer:
            for n in range(30):
                writer.put(f"{prefix}{n % 7}", str(n).encode())
                time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    seen = []
    for event in store.watch(prefix, revision + 1, timeout=10):
        seen.append(int(event.value))
        if len(seen) == 30:
            break
    writer.join()
    assert seen == list(range(30))


def test_watch_from_a_compacted_revision_raises_compacted(store: Store, etcd: Etcd, prefix: str) -> None:
    start = store.put(f"{prefix}k", b"1")
    store.put(f"{prefix}k", b"2")
    last = store.put(f"{prefix}k", b"3")
    env = {**os.environ, "ETCDCTL_API": "3"}
    subprocess.run(
        [str(ETCDCTL), "--endpoints", etcd.url, "compaction", str(last)], check=True, env=env, capture_output=True
    )
    with pytest.raises(Compacted) as raised:
        list(store.watch(prefix, start, timeout=5))
    assert raised.value.compact_revision == last and raised.value.revision == start
    assert "read everything again" in str(raised.value)
    items, revision = store.get_prefix(prefix)  # what the caller does: read it all, watch on from there
    assert items[f"{prefix}k"].value == b"3"
    store.put(f"{prefix}k", b"4")
    assert events_of(store.watch(prefix, revision + 1, timeout=0.5)) == [("put", f"{prefix}k", b"4")]


class Cutter:
    """A TCP relay in front of etcd whose connections the test cuts, as a network fault would."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.upstream))
            self.open += [near, far]
            for source, sink in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for conn in self.open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.open = []

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.cut()


def test_watch_resumes_after_its_stream_is_cut_without_losing_an_event(etcd: Etcd, store: Store, prefix: str) -> None:
    cutter = Cutter(etcd.port)
    try:
        with Store(StoreSettings((cutter.url,), timeout=2.0)) as through:
            start = store.put(f"{prefix}1", b"1")
            watch = through.watch(prefix, start, timeout=10)
            assert next(watch).key == f"{prefix}1"
            cutter.cut()
            store.put(f"{prefix}2", b"2")
            store.put(f"{prefix}3", b"3")
            assert [next(watch).key, next(watch).key] == [f"{prefix}2", f"{prefix}3"]
            cutter.cut()
            store.put(f"{prefix}4", b"4")
            assert next(watch).key == f"{prefix}4"
            watch.close()
    finally:
        cutter.close()


def test_watch_reports_a_restart_and_a_resumed_watch_misses_nothing(servers: Callable[..., Etcd]) -> None:
    server = servers()
    with Store(server.settings(timeout=1.0)) as store:
        start = store.put("/r/1", b"1")
        watch = store.watch("/r/", start, timeout=30)
        last = next(watch)
        assert last.key == "/r/1"
        store.put("/r/2", b"2")
        server.stop()
        seen = []
        with pytest.raises(StoreUnavailable, match="no endpoint answered"):
            for event in watch:
                seen.append(event)
                last = event
        server.start()
        store.put("/r/3", b"3")
        seen += store.watch("/r/", last.revision + 1, timeout=0.5)
        assert [e.key for e in seen] == ["/r/2", "/r/3"]


def test_failover_past_a_refusing_and_a_silent_endpoint(etcd: Etcd, prefix: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with socket.create_server(("127.0.0.1", 0)) as hole:  # accepts connections, never answers
        silent = f"http://127.0.0.1:{hole.getsockname()[1]}"
        with Store(StoreSettings((dead, silent, etcd.url), timeout=0.5)) as store:
            began = time.monotonic()
            store.put(f"{prefix}k", b"v")
            assert 0.5 <= time.monotonic() - began < 2
            began = time.monotonic()
            assert store.get(f"{prefix}k") is not None
            assert time.monotonic() - began < 0.4  # the endpoint that answered is asked first
        with Store(StoreSettings((silent, etcd.url), timeout=0.5)) as store:
            with pytest.raises(CommitUnknown, match=r"outcome unknown .*: timed out"):
                store.commit({f"{prefix}k": b"w"}, if_revision=(f"{prefix}k", 1))
            assert store.commit({f"{prefix}k": b"w"}).succeeded  # no compare: sent again, to the next one
    unreachable = StoreSettings((dead, f"http://127.0.0.1:{free_port()}"), timeout=0.5)
    with Store(unreachable) as store, pytest.raises(StoreUnavailable) as raised:
        store.get(f"{prefix}k")
    message = str(raised.value)
    assert "\n" not in message and dead in message and message.count("connection refused") == 2


@pytest.fixture(scope="module")
def auth_etcd(servers: Callable[..., Etcd]) -> Etcd:
    """An etcd whose auth tokens die after 2 s without use, with auth on and `reader` allowed to read /a/."""
    server = servers("--auth-token", "simple", "--auth-token-ttl", "2", "--bcrypt-cost", "4")
    with Store(server.settings()) as anyone:
        anyone.put("/a/x", b"a")
        anyone.put("/b/x", b"b")
    setup_auth(server.settings(), ROOT_PASSWORD, {"reader": (READER_PASSWORD, [("/a/", "read")])})
    return server


def test_auth_lets_a_user_read_its_prefix_only(auth_etcd: Etcd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = auth_etcd.settings(user="reader", password=READER_PASSWORD)
    assert READER_PASSWORD not in repr(settings)
    with Store(settings) as reader:
        item = reader.get("/a/x")
        assert item is not None and item.value == b"a"
        with pytest.raises(StorePermissionDenied, match=r"refused get /b/x to user 'reader'"):
            reader.get("/b/x")
        with pytest.raises(StorePermissionDenied):
            reader.put("/a/x", b"no")
    wrong = auth_etcd.settings(user="reader", password="wrong-s3cret")
    with Store(wrong) as store, pytest.raises(StoreAuthFailed, match="wrong user name or password") as raised:
        store.get("/a/x")
    assert "s3cret" not in str(raised.value)
    with Store(auth_etcd.settings()) as nobody, pytest.raises(StoreAuthFailed, match="no etcd user is configured"):
        nobody.get("/a/x")
    assert "s3cret" not in caplog.text


def test_setup_auth_again_converges(auth_etcd: Etcd) -> None:
    users = {"changer": ("first-s3cret", [("/a/", "read")])}
    setup_auth(auth_etcd.settings(), ROOT_PASSWORD, users)
    setup_auth(auth_etcd.settings(), ROOT_PASSWORD, users)  # the same again: nothing to do, no error
    setup_auth(auth_etcd.settings(), ROOT_PASSWORD, {"changer": ("second-s3cret", [("/b/", "readwrite")])})
    with Store(auth_etcd.settings(user="changer", password="first-s3cret")) as old, pytest.raises(StoreAuthFailed):
        old.get("/b/x")
    with Store(auth_etcd.settings(user="changer", password="second-s3cret")) as changer:
        changer.put("/b/y", b"written")
        with pytest.raises(StorePermissionDenied):
            changer.get("/a/x")  # the grant no longer listed is gone


def test_an_expired_token_means_a_new_login(auth_etcd: Etcd) -> None:
    with Store(auth_etcd.settings(user="reader", password=READER_PASSWORD)) as reader:
        assert reader.get("/a/x") is not None
        login = {"name": "reader", "password": READER_PASSWORD}
        token = requests.post(f"{auth_etcd.url}/v3/auth/authenticate", json=login, timeout=2).json()["token"]
        time.sleep(3.5)
        expired = requests.post(f"{auth_etcd.url}/v3/kv/range", json={"key": "L2Ev"}, headers={"Authorization": token})
        assert expired.status_code == 401 and "invalid auth token" in expired.text  # etcd did forget it
        assert reader.get("/a/x") is not None
        time.sleep(3.5)
        with Store(auth_etcd.settings(user="root", password=ROOT_PASSWORD)) as root:
            revision = root.put("/a/w", b"w")
        assert events_of(reader.watch("/a/", revision, timeout=0.3)) == [("put", "/a/w", b"w")]  # watch: same


def test_lock_is_held_by_one_holder_at_a_time(etcd: Etcd, store: Store, prefix: str) -> None:
    key, counter, inside, overlaps = f"{prefix}lock", f"{prefix}counter", [0], []

    def contend() -> None:
        with Store(etcd.settings()) as mine:
            for _ in range(10):
                with mine.lock(key, ttl=5, timeout=20):
                    inside[0] += 1
                    overlaps.append(inside[0])
                    item = mine.get(counter)
                    time.sleep(0.01)
                    mine.put(counter, str(int(item.value) + 1 if item else 1).encode())
                    inside[0] -= 1

    threads = [threading.Thread(target=contend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1 and store.get(key) is None
    item = store.get(counter)
    assert item is not None and item.value == b"20"
    with (
        store.lock(key, ttl=5) as held,
        Store(etcd.settings()) as other,
        pytest.raises(LockTimeout, match=f"still held by {held.holder}"),
    ):
        other.lock(key, timeout=0.3).acquire()
    assert store.get(key) is None  # released: the lease revoked, its key gone


HOLDER = """
import sys, time
from toolkit.store import Store, StoreSettings
lock = Store(StoreSettings((sys.argv[1],), timeout=2.0)).lock(sys.argv[2], ttl=2, timeout=5).acquire()
print(lock.holder, flush=True)
time.sleep(60)
"""


def test_a_killed_holder_frees_the_lock_after_its_ttl(etcd: Etcd, store: Store, prefix: str) -> None:
    key = f"{prefix}lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, etcd.url, key], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        name = holder.stdout.readline().strip()
        assert f":{holder.pid}:" in name
        time.sleep(1.0)  # longer than a third of the TTL: the holder has refreshed its lease
        with pytest.raises(LockTimeout, match=name):
            store.lock(key, timeout=1.5).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        assert store.get(key) is not None  # nobody revoked it: only the TTL can free it
        with store.lock(key, ttl=2, timeout=10) as lock:
            waited = time.monotonic() - killed
            assert not lock.lost.is_set()
        assert 0.5 < waited < 4.5
    finally:
        holder.kill()
        holder.wait(10)


def test_lost_is_set_when_the_lease_is_revoked_behind_the_holders_back(etcd: Etcd, store: Store, prefix: str) -> None:
    with store.lock(f"{prefix}lock", ttl=3) as lock:
        fence = (lock.key, lock.revision)
        assert store.commit({f"{prefix}data": b"1"}, if_revision=fence).succeeded
        requests.post(f"{etcd.url}/v3/kv/lease/revoke", json={"ID": str(lock.lease_id)}, timeout=2).raise_for_status()
        assert lock.lost.wait(3)
        assert not store.commit({f"{prefix}data": b"2"}, if_revision=fence).succeeded  # fenced off
    data = store.get(f"{prefix}data")
    assert data is not None and data.value == b"1" and store.get(f"{prefix}lock") is None


def test_tls_verifies_etcd_against_the_ca_given(servers: Callable[..., Etcd], tmp_path: Path) -> None:
    ca, wrong = authority.new_ca("kgt-test"), authority.new_ca("kgt-test")
    names = Names(dns=("localhost",), ips=(ipaddress.IPv4Address("127.0.0.1"),))
    cert = authority.issue(ca, "etcd", names, "kgt-test", days=1, start=authority.now() - dt.timedelta(minutes=1))
    files = {"cert.pem": authority.cert_pem(cert.cert), "key.pem": authority.key_pem(cert.key)}
    files |= {"ca.pem": authority.cert_pem(ca.cert), "wrong.pem": authority.cert_pem(wrong.cert)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    server = servers(tls=(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"))
    assert server.url.startswith("https://")
    with Store(server.settings(ca=tmp_path / "ca.pem")) as store:
        revision = store.put("/tls/k", b"v")
        item = store.get("/tls/k")
        assert item is not None and item.mod_revision == revision
        began = time.monotonic()
        assert events_of(store.watch("/tls/", revision, timeout=0.5)) == [("put", "/tls/k", b"v")]
        assert time.monotonic() - began < 1.0  # the deadline holds on a TLS socket too
    with Store(server.settings(ca=tmp_path / "wrong.pem")) as store, pytest.raises(StoreUnavailable) as raised:
        store.get("/tls/k")
    assert "certificate verify failed" in str(raised.value)
