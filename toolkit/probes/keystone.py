"""`kgt probe keystone`: a token issued in one region validates in every region.

Issues a token through the first region's endpoint (keystoneauth1 password auth, user
admin in project admin, domain Default) and validates it through every region's
endpoint with `GET /v3/auth/tokens` (X-Auth-Token and X-Subject-Token both the token).
Every region shares one database, so a region that rejects a good token (401/404)
almost always has Fernet keys out of sync with the issuing region.

Endpoints: each region's first VIP at its HAProxy keystone_port
(`https://VIP:5000/v3` on a TLS site, verified against the site CA or `--ca`; else
`http://`), overridable with `--endpoint REGION=URL`.

States
- CRITICAL: a region rejects the token or answers an error (named); a region's endpoint
  unreachable or silent within the budget (its users cannot log in: an outage, not an
  unknown); the issuing endpoint unreachable or failing; latency outside -c.
- WARNING: latency outside -w.
- UNKNOWN: the issuing region rejects the admin credentials (401: a wrong password, not
  a Keystone fault), bad arguments, no result within -t.

`-w/-c` judge every latency in seconds. Perfdata: `issue_<region>` (s),
`validate_<region>` (s) for each region that answered.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nagiosplugin

from toolkit.errors import ProbeUnknown
from toolkit.probes import model
from toolkit.probes.model import Critical, Ok
from toolkit.probes.runtime import Deadline, ProbeArgs, execute, reason

if TYPE_CHECKING:
    from toolkit.topology.model import Topology

NAME = "kgt keystone"


class Keystone(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """The Keystone endpoints of every region, asked with one token."""

    def __init__(
        self,
        endpoints: dict[str, str],
        issue_region: str,
        credentials: dict[str, str],
        deadline: Deadline,
        ca: Path | None = None,
    ) -> None:
        self.endpoints, self.issue_region = endpoints, issue_region
        self.credentials, self.deadline, self.ca = credentials, deadline, ca

    def probe(self) -> list[nagiosplugin.Metric]:
        """Issue, then validate region by region."""
        import requests
        from keystoneauth1 import exceptions as ks_exc
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        issue_url = self.endpoints[self.issue_region]
        auth = v3.Password(
            auth_url=issue_url,
            username=self.credentials["user"],
            password=self.credentials["password"],
            project_name=self.credentials["project"],
            user_domain_name=self.credentials["domain"],
            project_domain_name=self.credentials["domain"],
        )
        direct = requests.Session()
        direct.trust_env = False  # straight to the endpoints: no http_proxy from the environment
        verify: bool | str = str(self.ca) if self.ca is not None else True
        session = ks_session.Session(auth=auth, timeout=self.deadline.budget(), session=direct, verify=verify)
        region = self.issue_region
        started = time.monotonic()
        try:
            token = session.get_token()
        except ks_exc.Unauthorized:
            raise ProbeUnknown(
                f"{region} ({issue_url}) rejected the credentials of {self.credentials['user']} (check the password)"
            ) from None
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.RequestTimeout) as exc:
            return [
                model.finding(
                    f"issue_{region}", Critical, f"{region}: cannot issue a token, {issue_url} {_failure(exc)}"
                )
            ]
        except ks_exc.ClientException as exc:
            return [
                model.finding(
                    f"issue_{region}", Critical, f"{region}: cannot issue a token at {issue_url}: {_short(exc)}"
                )
            ]
        if not token:
            return [model.finding(f"issue_{region}", Critical, f"{region}: {issue_url} issued no token")]
        out = [
            nagiosplugin.Metric(f"issue_{region}", round(time.monotonic() - started, 6), "s", min=0, context="latency")
        ]
        for name, url in self.endpoints.items():
            out += self.validate(session, name, url, token)
        return out

    def validate(self, session: Any, region: str, url: str, token: str) -> list[nagiosplugin.Metric]:
        """Latency and verdict of one region's `GET /v3/auth/tokens`."""
        from keystoneauth1 import exceptions as ks_exc

        started = time.monotonic()
        try:
            response = session.get(
                url.rstrip("/") + "/auth/tokens",
                authenticated=False,
                raise_exc=False,
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
                timeout=self.deadline.budget(),
            )
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.RequestTimeout) as exc:
            return [model.finding(f"valid_{region}", Critical, f"{region}: {url} {_failure(exc)}")]
        latency = nagiosplugin.Metric(
            f"validate_{region}", round(time.monotonic() - started, 6), "s", min=0, context="latency"
        )
        code = response.status_code
        if code == 200:
            verdict = model.finding(f"valid_{region}", Ok, f"{region} validated the token")
        elif code in (401, 404):
            verdict = model.finding(
                f"valid_{region}",
                Critical,
                f"{region} rejected a token issued in {self.issue_region} (HTTP {code}): Fernet keys out of sync?",
            )
        else:
            verdict = model.finding(f"valid_{region}", Critical, f"{region}: validating answered HTTP {code}")
        return [verdict, latency]


def _failure(exc: BaseException) -> str:
    """`unreachable: [Errno 111] Connection refused` or `did not answer in time`."""
    from keystoneauth1 import exceptions as ks_exc

    if isinstance(exc, (ks_exc.ConnectTimeout, ks_exc.RequestTimeout)):
        return "did not answer within the time budget (-t)"
    return f"unreachable: {reason(exc)}"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or exc.__class__.__name__


def endpoints_of(topology: Topology, overrides: dict[str, str]) -> dict[str, str]:
    """Region → Keystone URL: the first VIP at the keystone port, unless overridden."""
    from toolkit.render import context as ctx

    names = [r.name for r in topology.regions]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ProbeUnknown(f"--endpoint for unknown region {', '.join(unknown)} (regions: {', '.join(names)})")
    out = {}
    for region in topology.regions:
        if region.name in overrides:
            out[region.name] = overrides[region.name]
        elif region.vips:
            out[region.name] = ctx.vip_keystone_url(topology, region.vips[0])
    return out


def main(args: ProbeArgs, *, endpoints: dict[str, str], issue_region: str | None, project: str, domain: str) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        model_ = args.model()
        urls = endpoints_of(model_, endpoints) if model_ is not None else dict(endpoints)
        if not urls:
            raise ProbeUnknown("no endpoint: give a topology (regions with VIPs) or --endpoint REGION=URL")
        issuer = issue_region or next(iter(urls))
        if issuer not in urls:
            raise ProbeUnknown(f"--issue-region {issuer}: no endpoint for it (have: {', '.join(urls)})")
        credentials = {
            "user": args.user,
            "project": project,
            "domain": domain,
            "password": args.password(model_, "keystone_admin_password"),
        }

        def ok_text(results: nagiosplugin.Results) -> str:
            regions = [
                r.metric.name.removeprefix("valid_")
                for r in results
                if r.metric is not None and r.metric.name.startswith("valid_")
            ]
            return f"token issued in {issuer} validated in {', '.join(regions)}"

        return model.check(
            NAME,
            ok_text,
            Keystone(urls, issuer, credentials, deadline, args.ca_file(model_)),
            model.Scalar("latency", args.warning, args.critical),
        )

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)
