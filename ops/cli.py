"""`oncofed-ops`: the consortium CA, local federations, the demo.

Errors are mapped to exit codes here and nowhere else: an `OncoFedError`
becomes one line on stderr and `EXIT_CODES[kind]`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from edge_node.policy import parse_policy
from ops import ca, testbed, vpn
from ops.demo import DEFAULT_PATIENTS as DEMO_DEFAULT_PATIENTS
from ops.demo import DEFAULT_SEED as DEMO_DEFAULT_SEED
from ops.demo import DemoOptions, run_demo
from ops.local_federation import (
    LocalFederationRun,
    check_output,
    check_policy,
    load_study,
    parse_sites,
    run_local_federation,
)
from ops.processes import Terminated, sigterm_raises
from ops.synth.report import print_summary
from shared_cdm.errors import EXIT_CODES, Conflict, InvalidInput, NotFound, OncoFedError

T = TypeVar("T")
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="oncofed-ops",
    help="Operations for an OncoFed consortium: CA, local federations, the demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ca_app = typer.Typer(help="The consortium certificate authority.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
vpn_app = typer.Typer(
    help="WireGuard keys and configs for the hub and sites.", no_args_is_help=True
)
app.add_typer(vpn_app, name="vpn")
testbed_app = typer.Typer(
    help="A hub and N hospitals as network namespaces joined by WireGuard (root).",
    no_args_is_help=True,
)
app.add_typer(testbed_app, name="testbed")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _guarded(action: Callable[[], T]) -> T:
    """Run `action`; typed errors and interrupts become a one-line message and an exit code."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with sigterm_raises():
            return action()
    except OncoFedError as exc:
        errors.print(f"oncofed-ops: error: {_one_line(exc.message)}", markup=False)
        raise typer.Exit(EXIT_CODES[exc.kind]) from None
    except (KeyboardInterrupt, Terminated):
        errors.print("oncofed-ops: interrupted; everything it started was stopped", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


@ca_app.command("init", help="Make a consortium CA (ca.crt, ca.key) in DIR.")
def ca_init(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the CA's files.")],
    force: Annotated[bool, typer.Option(help="Replace an existing CA.")] = False,
) -> None:
    cert = _guarded(lambda: ca.init_ca(directory, force=force))
    typer.echo(f"CA certificate: {cert}")


@ca_app.command("issue", help="Issue a certificate for a site (or the hub) from the CA in DIR.")
def ca_issue(
    directory: Annotated[Path, typer.Option("--dir", help="The CA's folder.")],
    site: Annotated[str, typer.Option(help="The party's name: its certificate's CN.")],
    role: Annotated[str, typer.Option(help="edge or hub.")] = "edge",
    dns: Annotated[
        list[str] | None, typer.Option(help="A DNS name the certificate answers to (repeat).")
    ] = None,
    ip: Annotated[
        list[str] | None, typer.Option(help="An IP address the certificate answers to (repeat).")
    ] = None,
) -> None:
    issued = _guarded(
        lambda: ca.issue(
            directory,
            site,
            ca.parse_role(role),
            dns_names=tuple(dns or ()),
            ip_addresses=tuple(ip or ()),
        )
    )
    typer.echo(f"certificate: {issued.cert}")
    typer.echo(f"private key: {issued.key} (mode 0600)")


@ca_app.command(
    "revoke", help="Revoke NAME's certificate: add it to the CA's revocation list (crl.pem)."
)
def ca_revoke(
    name: Annotated[str, typer.Argument(help="The party's name (its certificate's CN).")],
    directory: Annotated[Path, typer.Option("--dir", help="The CA's folder.")],
) -> None:
    record = _guarded(lambda: ca.revoke(directory, name))
    typer.echo(f"revoked: {record.name} (certificate serial {record.serial:x})")
    typer.echo(
        f"revocation list: {record.crl} (next update {record.next_update:%Y-%m-%d %H:%M:%SZ})"
    )
    typer.echo(
        "next: copy it into the hub's tls/ folder beside ca.crt (write, then rename); "
        "the hub refuses the certificate from its next call, no restart"
    )
    typer.echo(f"renew the list before its next update: oncofed-ops ca renew-crl --dir {directory}")


@ca_app.command(
    "renew-crl",
    help="Re-sign the CA's revocation list (crl.pem) unchanged with a later next update.",
)
def ca_renew_crl(
    directory: Annotated[Path, typer.Option("--dir", help="The CA's folder.")],
) -> None:
    signed = _guarded(lambda: ca.renew_crl(directory))
    typer.echo(
        f"revocation list: {signed.crl} ({signed.entries} revoked, "
        f"next update {signed.next_update:%Y-%m-%d %H:%M:%SZ})"
    )
    typer.echo("next: copy it into the hub's tls/ folder beside ca.crt (write, then rename)")


@app.command(
    "local-federation",
    help="Run one study over CSV tables with a real hub and one real edge per site.",
)
def local_federation(
    site: Annotated[
        list[str], typer.Option(help="NAME=PATH.csv: a site and its table (repeat per site).")
    ],
    study: Annotated[Path, typer.Option(help="The study spec (JSON).")],
    out: Annotated[Path, typer.Option(help="Where to write the result (JSON).")],
    policy: Annotated[Path | None, typer.Option(help="A policy.toml given to every site.")] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the study to finish.")
    ] = 600.0,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep certificates, databases and logs here (default: a temp dir)."),
    ] = None,
) -> None:
    progress = Console(stderr=True, log_path=False)

    def action() -> None:
        request = LocalFederationRun(
            sites=tuple(parse_sites(site)),
            study=load_study(study),
            out=check_output(out),
            policy=check_policy(policy),
            timeout=timeout,
            workdir=workdir,
        )
        run_local_federation(request, progress)

    _guarded(action)


@app.command(
    "demo",
    help="The main job: CA, hub and three hospital edges (WireGuard testbed or loopback "
    "mTLS), synthetic hospitals through the edge pipeline, a lung-cancer study, and what "
    "crossed the wire.",
)
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="An empty folder for the demo (default: a new temp dir).")
    ] = None,
    network: Annotated[
        str,
        typer.Option(
            help="testbed (namespaces + WireGuard, root), loopback (mutual TLS) or auto "
            "(the testbed where the machine allows it)."
        ),
    ] = "auto",
    patients: Annotated[
        int, typer.Option(help="Patients per synthetic hospital.")
    ] = DEMO_DEFAULT_PATIENTS,
    seed: Annotated[int, typer.Option(help="Random seed of the hospitals.")] = DEMO_DEFAULT_SEED,
    flower: Annotated[bool, typer.Option(help="Train the Flower model (the slowest step).")] = True,
    exit_after: Annotated[
        bool,
        typer.Option(
            "--exit", help="Stop everything once the results are printed (default: keep the hub)."
        ),
    ] = False,
) -> None:
    options = DemoOptions(
        workdir=workdir,
        network=network,
        patients=patients,
        seed=seed,
        keep_running=not exit_after,
        flower=flower,
    )
    _guarded(
        lambda: run_demo(
            out=Console(),
            progress=Console(stderr=True, log_path=False),
            options=options,
        )
    )


@app.command(
    "synth-hospital",
    help="Write a synthetic hospital (EMR, LIS, PACS) and its ground truth into OUT.",
)
def synth_hospital(
    patients: Annotated[int, typer.Option(help="How many patients.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed and variant, same files.")],
    out: Annotated[Path, typer.Option(help="A new or empty folder.")],
    variant: Annotated[str, typer.Option(help="Hospital variant: A, B or C.")] = "A",
    scans: Annotated[
        bool, typer.Option(help="mapping.yaml also reads lab_sheets/ by OCR (~2 s a sheet).")
    ] = False,
) -> None:
    from ops.synth.hospital import write_hospital
    from ops.synth.variants import get_variant

    summary = _guarded(
        lambda: write_hospital(
            out, patients=patients, seed=seed, variant=get_variant(variant), scans=scans
        )
    )
    print_summary(Console(), out, summary)


@app.command(
    "synth-lab-sheets",
    help="Write N lab sheets (scans, phone photos, forwarded JPEGs; PNG/JPEG/PDF) "
    "and truth.jsonl into OUT, for `oncofed-edge ocr-eval`.",
)
def synth_lab_sheets(
    n: Annotated[int, typer.Option("--n", min=1, help="How many sheets.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
) -> None:
    from ops.synth.ocr_sheets import write_lab_sheets

    counts = _guarded(lambda: write_lab_sheets(out, n, seed))
    typer.echo(", ".join(f"{kind} {count}" for kind, count in counts.items()))


@vpn_app.command("init", help="Make the hub's WireGuard key and the address plan in DIR.")
def vpn_init(
    directory: Annotated[Path, typer.Option("--dir", help="The VPN folder (hub operator's).")],
    subnet: Annotated[str, typer.Option(help="Tunnel subnet; the hub takes its first address.")] = (
        vpn.DEFAULT_SUBNET
    ),
    endpoint: Annotated[
        str | None, typer.Option(help="HOST:PORT where sites reach the hub's WireGuard.")
    ] = None,
) -> None:
    plan = _guarded(lambda: vpn.init(directory, subnet=subnet, endpoint=endpoint))
    typer.echo(f"hub: {plan.hub_address} public key {plan.hub_public_key}")
    typer.echo(f"hub config: {vpn.VpnFolder(directory).hub_config} (mode 0600)")


@vpn_app.command("add-site", help="Make NAME's WireGuard key and both ends' configs.")
def vpn_add_site(
    name: Annotated[str, typer.Argument(help="The site's name (as in its certificate).")],
    directory: Annotated[Path, typer.Option("--dir", help="The VPN folder.")],
) -> None:
    site = _guarded(lambda: vpn.add_site(directory, name))
    folder = vpn.VpnFolder(directory)
    typer.echo(f"site {site.name}: {site.address} public key {site.public_key}")
    typer.echo(f"site config: {folder.site_config(name)} (mode 0600; install it at the site)")
    typer.echo(f"hub config updated: {folder.hub_config} (apply: systemctl reload oncofed-tunnel)")


@vpn_app.command("revoke", help="Remove NAME's peer from the hub config and record it.")
def vpn_revoke(
    name: Annotated[str, typer.Argument(help="The site's name.")],
    directory: Annotated[Path, typer.Option("--dir", help="The VPN folder.")],
) -> None:
    record = _guarded(lambda: vpn.revoke(directory, name))
    typer.echo(f"site {record.name} revoked at {record.revoked_at} (key {record.public_key})")
    typer.echo("apply at the hub: systemctl reload oncofed-tunnel (docs/network.md)")


@testbed_app.command("up", help="Build a hub and N hospitals in network namespaces.")
def testbed_up(
    sites: Annotated[int, typer.Option(help="How many hospitals.")],
    directory: Annotated[Path, typer.Option("--dir", help="A new or empty folder.")],
    network_only: Annotated[
        bool, typer.Option(help="Only namespaces and tunnels; no hub or edges.")
    ] = False,
    patients: Annotated[int, typer.Option(help="Patients per synthetic hospital.")] = 40,
    flower: Annotated[
        bool,
        typer.Option(help="A Flower SuperLink beside the hub, on its tunnel address (ML studies)."),
    ] = False,
    policy: Annotated[
        Path | None,
        typer.Option(help="A policy.toml every edge starts with (default: the edge's own)."),
    ] = None,
) -> None:
    progress = Console(stderr=True, log_path=False)

    def act() -> tuple[testbed.TestbedOptions, testbed.Testbed]:
        if network_only and (flower or policy is not None):
            raise InvalidInput("--flower and --policy need the services; drop --network-only")
        options = testbed.TestbedOptions(
            sites=sites,
            services=not network_only,
            patients=patients,
            flower=flower,
            policy=None if policy is None else _read_policy(policy),
        )
        return options, testbed.up(directory, options, progress.log)

    options, bed = _guarded(act)
    for host in bed.state.hosts.values():
        tunnel = host.tunnel_address or "-"
        typer.echo(
            f"{host.name}: namespace {host.namespace} underlay {host.underlay} tunnel {tunnel}"
        )
    if options.services:
        typer.echo(f"hub gRPC (tunnel only): {bed.hub_grpc}")
    if options.flower:
        typer.echo(f"hub Flower SuperLink (tunnel only): {bed.hub_flower}")
    typer.echo(f"tear down: oncofed-ops testbed down --dir {directory}")


def _read_policy(path: Path) -> str:
    """The text of a site policy file, checked before anything is built (a bad file
    would otherwise fail each edge's `init` after minutes of set-up)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"policy file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"policy file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"policy file {path} cannot be read: {exc.strerror}") from None
    parse_policy(text, f"policy file {path}")
    return text


@testbed_app.command("down", help="Remove everything `testbed up` made in DIR.")
def testbed_down(
    directory: Annotated[Path, typer.Option("--dir", help="The testbed's folder.")],
    keep_files: Annotated[bool, typer.Option(help="Keep logs, keys and databases.")] = False,
) -> None:
    left = _guarded(lambda: testbed.down(directory, keep_files=keep_files))
    if left:
        typer.echo("left behind: " + "; ".join(left), err=True)
        raise typer.Exit(1)
    typer.echo("testbed removed")


@testbed_app.command("link", help="Cut (down) or restore (up) a host's only link.")
def testbed_link(
    host: Annotated[str, typer.Argument(help="hub, hospital-N or outsider.")],
    state: Annotated[str, typer.Argument(help="up or down.")],
    directory: Annotated[Path, typer.Option("--dir", help="The testbed's folder.")],
) -> None:
    def act() -> None:
        if state not in ("up", "down"):
            raise InvalidInput(f"link state must be up or down, not {state!r}")
        bed = testbed.open_testbed(directory)
        if host not in bed.state.hosts:
            raise InvalidInput(f"no host {host!r}; hosts: {', '.join(bed.state.hosts)}")
        bed.link(host, up=state == "up")

    _guarded(act)
    typer.echo(f"{host}: link {state}")


def _service(bed: testbed.Testbed, name: str) -> str:
    """NAME, checked against the services the testbed runs."""
    if not bed.state.services:
        raise Conflict("this testbed runs no services (it was made with --network-only)")
    services = [testbed.HUB_NAME, *(f"edge-{s}" for s in bed.state.sites)]
    if name not in services:
        raise InvalidInput(f"no service {name!r}; the testbed runs {', '.join(services)}")
    return name


@testbed_app.command("kill", help="SIGKILL a service: hub or edge-hospital-N.")
def testbed_kill(
    name: Annotated[str, typer.Argument(help="hub or edge-hospital-N.")],
    directory: Annotated[Path, typer.Option("--dir", help="The testbed's folder.")],
) -> None:
    def act() -> bool:
        bed = testbed.open_testbed(directory)
        was_running = bed.running(_service(bed, name))
        bed.kill(name)
        return was_running

    typer.echo(f"{name} killed" if _guarded(act) else f"{name} was not running")


@testbed_app.command("start", help="Start a killed service again: hub or edge-hospital-N.")
def testbed_start(
    name: Annotated[str, typer.Argument(help="hub or edge-hospital-N.")],
    directory: Annotated[Path, typer.Option("--dir", help="The testbed's folder.")],
) -> None:
    def act() -> testbed.ProcessRecord:
        bed = testbed.open_testbed(directory)
        # A second copy would share the first one's home, certificate and ports.
        if bed.running(_service(bed, name)):
            raise Conflict(f"{name} is already running (pid {bed.process(name).pid})")
        return testbed.start_service(bed, name)

    record = _guarded(act)
    typer.echo(f"{name} running (pid {record.pid})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
