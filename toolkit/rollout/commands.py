"""`kgt agent` (runs on every host) and `kgt rollout status | wait | resume` (what the agents did; a halt cleared).

Exit codes: `rollout status` 0 when every selected host runs its published generation, 1
when some do not (pending, waiting, failed, stale or drifted), 3 when etcd cannot be read;
`rollout wait` the same after waiting up to `--timeout`, naming the hosts that do not;
`agent` runs until SIGTERM (`--once`: 0 when the host runs its generation after one pass,
1 when not). Usage errors exit 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from toolkit.cli_options import FamilyGroup, duration_option, output_format, selection
from toolkit.cli_options import secrets as secrets_option
from toolkit.cli_options import topology as topology_argument
from toolkit.errors import RolloutUnreadable, StoreError

if TYPE_CHECKING:
    from toolkit.rollout.agent import AgentConfig
    from toolkit.rollout.coordinate import Coordinator
    from toolkit.store import Store
    from toolkit.topology.model import Topology

DEFAULT_CONFIG = Path("/etc/kgt/agent.yaml")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG)
@click.option(
    "--services", type=click.Choice(["systemd", "lab"]), help="how services are driven (default: the config's)"
)
@click.option("--once", is_flag=True, help="apply what is published once and exit (0: this host runs it)")
def agent(config_path: Path, services: str | None, once: bool) -> None:
    """Watch this host's generation in etcd and apply it (README: Rollout)."""
    from toolkit.rollout.agent import Agent, AgentConfig
    from toolkit.rollout.keys import Keys
    from toolkit.store import Store, StoreSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = AgentConfig.read(config_path)
    if services:
        config = dataclasses.replace(config, services=services)
    credentials = config.credentials()
    store = Store(StoreSettings(config.endpoints, config.ca, credentials.user, credentials.password))
    holder: list[Agent] = []
    coordinator = _coordinator(config, store, lambda: holder[0].status.target if holder else 0)
    holder.append(Agent(config, store, credentials, coordinator))
    runner = holder[0]
    if once:
        runner.recover()
        runner.step()
        click.get_current_context().exit(0 if runner.status.state == "applied" else 1)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"kgt agent {config.host}: watching {Keys(config.site).manifest(config.host)}", err=True)
    runner.run(stop)


def _coordinator(config: AgentConfig, store: Store, generation: Callable[[], int]) -> Coordinator:
    """The host's coordinator, with its services driven as the config says."""
    from toolkit.rollout.actions import ServiceActions, SystemdServices
    from toolkit.rollout.coordinate import Coordinator
    from toolkit.rollout.keys import Keys

    def actions(topology: Topology) -> ServiceActions:
        host = topology.host(config.host)
        if config.services == "lab":
            from toolkit.lab.host import LocalHost
            from toolkit.lab.services import LabServices

            return ServiceActions(LabServices(topology, host, LocalHost(host.name)), config.root, can_sysctl=False)
        from toolkit.lab.host import LocalHost

        return ServiceActions(SystemdServices(topology, host, LocalHost(host.name)), config.root)

    def topology() -> Topology:
        return host_topology(config.root)

    return Coordinator(store, Keys(config.site), config.host, config.root, actions, topology, generation)


def host_topology(root: Path) -> Topology:
    """The site's topology as published to this host (`/etc/kgt/topology.yaml`), its CA the agent's."""
    from toolkit.render.engine import AGENT_CA, TOPOLOGY_FILE
    from toolkit.rollout.apply import on_disk
    from toolkit.topology import load

    topology = load(on_disk(root, TOPOLOGY_FILE))
    if topology.tls is None:
        return topology
    return dataclasses.replace(topology, tls=dataclasses.replace(topology.tls, ca_file=on_disk(root, AGENT_CA)))


@click.group(cls=FamilyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def rollout() -> None:
    """What the agents did with what was published: per host generation, state and drift."""


def _rows(topology_path: Path, secrets_path: Path | None, regions: tuple[str, ...], hosts: tuple[str, ...]) -> Any:
    from toolkit import secretstore
    from toolkit.render.select import Selection
    from toolkit.rollout import status as rollout_status
    from toolkit.topology import load

    model = load(topology_path)
    chosen = Selection(regions, hosts).check(model)
    secrets = secretstore.for_topology(model, secrets_path)
    try:
        return rollout_status.read(model, secrets, chosen)
    except StoreError as exc:
        raise RolloutUnreadable(f"etcd: {exc}") from None


@rollout.command("status")
@topology_argument()
@secrets_option
@selection()
@output_format()
def status_command(
    topology: Path, secrets_path: Path | None, regions: tuple[str, ...], hosts: tuple[str, ...], fmt: str
) -> None:
    """Per host: published and applied generation, state (with the reason) and drift."""
    from toolkit.rollout import status as rollout_status

    rows = _rows(topology, secrets_path, regions, hosts)
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        for line in rollout_status.table(rows):
            click.echo(line)
    click.get_current_context().exit(0 if all(r.converged for r in rows) else 1)


@rollout.command("wait")
@topology_argument()
@secrets_option
@selection()
@duration_option("--timeout", default="5m", help="how long to wait for every host")
def wait_command(
    topology: Path, secrets_path: Path | None, regions: tuple[str, ...], hosts: tuple[str, ...], timeout: float
) -> None:
    """Wait until every host runs its published generation (exit 0), else name those that do not (exit 1)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(topology, secrets_path, regions, hosts)
        behind = [r for r in rows if not r.converged]
        if not behind:
            click.echo(f"every host runs its published generation ({len(rows)} hosts)")
            return
        if time.monotonic() >= deadline:
            names = "; ".join(r.summary() for r in behind)
            click.echo(
                f"kgt: {len(behind)} of {len(rows)} hosts do not run their published generation: {names}", err=True
            )
            click.get_current_context().exit(1)
        time.sleep(0.25)


@rollout.command("resume")
@click.argument("service")
@topology_argument()
@secrets_option
def resume_command(service: str, topology: Path, secrets_path: Path | None) -> None:
    """Clear the halt a failed restart of SERVICE set, so the agents may restart it again."""
    from toolkit import secretstore
    from toolkit.rollout import publish
    from toolkit.rollout.keys import Keys
    from toolkit.store import Store
    from toolkit.topology import load

    model = load(topology)
    secrets = secretstore.for_topology(model, secrets_path)
    key = Keys(model.name).halt(service)
    try:
        with Store(publish.root_settings(model, secrets)) as store:
            item = store.get(key)
            if item is None:
                click.echo(f"{service}: its rollout is not halted")
                return
            store.delete_prefix(key)
    except StoreError as exc:
        raise RolloutUnreadable(f"etcd: {exc}") from None
    click.echo(f"{service}: rollout resumed (it was halted: {item.value.decode(errors='replace')})")
