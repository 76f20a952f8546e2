"""deploy/install.sh and the systemd units, staged into a temporary root.

``--root`` installs exactly what a real install writes (venv, units, sample
configuration) under a temporary directory, so this runs without touching
the machine and without root. The units are checked with
``systemd-analyze verify`` when it is installed, and the shipped default
configurations are parsed by the programs that will read them.
"""

from __future__ import annotations

import configparser
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pilotgw.daemon import cli as daemon_cli
from pilotgw.daemon import config as daemon_config
from pilotgw.rendezvous import cli as rendezvous_cli

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install.sh"
UNITS = ("pilot-daemon", "pilot-rendezvous", "pilot-gateway")
LOOPBACK = "127.0.0.1"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="Linux only")]


def _install(wheels: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--wheels", str(wheels), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("install")
    wheels = base / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = base / "root"
    proc = _install(wheels, root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Nothing was started" in proc.stdout
    (root / "wheels").symlink_to(wheels)
    yield root


def _unit(root: Path, name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(root / "etc/systemd/system" / f"{name}.service")
    return parser


def _env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_venv_has_the_programs_and_they_run(staged: Path) -> None:
    bindir = staged / "opt/pilotgw/bin"
    proc = subprocess.run([str(bindir / "pilot-daemon"), "-h"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: pilot-daemon" in proc.stderr
    proc = subprocess.run([str(bindir / "pilot-rendezvous"), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "registry" in proc.stdout
    proc = subprocess.run([str(bindir / "pilot-gateway"), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--subnet" in proc.stdout
    assert (bindir / "pilotctl").exists()


def test_units_run_the_installed_programs_with_their_env_files(staged: Path) -> None:
    for name, env in (("pilot-daemon", "daemon"), ("pilot-rendezvous", "rendezvous"), ("pilot-gateway", "gateway")):
        service = _unit(staged, name)["Service"]
        assert service["ExecStart"].startswith("/opt/pilotgw/bin/")
        assert service["EnvironmentFile"] == f"/etc/pilotgw/{env}.env"
        assert service["Restart"] == "on-failure"
        env_file = staged / "etc/pilotgw" / f"{env}.env"
        assert env_file.stat().st_mode & 0o777 == 0o640


def test_each_unit_keeps_only_the_privileges_it_needs(staged: Path) -> None:
    daemon = _unit(staged, "pilot-daemon")["Service"]
    assert daemon["User"] == "pilot"
    assert daemon["CapabilityBoundingSet"] == ""
    assert daemon["NoNewPrivileges"] == "yes"
    rendezvous = _unit(staged, "pilot-rendezvous")["Service"]
    assert rendezvous["DynamicUser"] == "yes" and rendezvous["CapabilityBoundingSet"] == ""
    gateway = _unit(staged, "pilot-gateway")
    caps = gateway["Service"]["CapabilityBoundingSet"].split()
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_ADMIN" not in caps
    assert gateway["Service"]["DeviceAllow"] == "/dev/net/tun rw"
    # The daemon's socket is 0600: the gateway must run as the daemon's user.
    assert gateway["Service"]["User"] == daemon["User"]
    assert set(gateway["Service"]["AmbientCapabilities"].split()) == set(caps)
    assert gateway["Unit"]["Requires"] == "pilot-daemon.service"
    # The daemon and the gateway meet on one socket path.
    assert "PILOT_SOCKET=/run/pilotgw/pilot.sock" in daemon["Environment"]
    assert "PILOT_SOCKET=/run/pilotgw/pilot.sock" in gateway["Service"]["Environment"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(staged: Path, tmp_path: Path) -> None:
    # verify checks that ExecStart and EnvironmentFile exist: point them into the staged root.
    for name in UNITS:
        text = (staged / "etc/systemd/system" / f"{name}.service").read_text()
        text = text.replace("/opt/pilotgw/", f"{staged}/opt/pilotgw/").replace("/etc/pilotgw/", f"{staged}/etc/pilotgw/")
        (tmp_path / f"{name}.service").write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / f"{n}.service") for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_default_configs_are_valid_and_point_only_at_loopback(staged: Path) -> None:
    env = _env(staged / "etc/pilotgw/daemon.env")
    flags = daemon_cli.parse_args(shlex.split(env["PILOT_DAEMON_FLAGS"]))
    cfg = daemon_config.build(flags, env={"PILOT_REGISTRY": env["PILOT_REGISTRY"]})
    assert cfg.registry.startswith(LOOPBACK + ":") and cfg.beacon.startswith(LOOPBACK + ":")
    rv = _env(staged / "etc/pilotgw/rendezvous.env")
    options = rendezvous_cli.resolve_options(shlex.split(rv["PILOT_RENDEZVOUS_FLAGS"]))
    assert options["http"].startswith(LOOPBACK + ":")
    from pilotgw.gateway import cli as gateway_cli

    gw = _env(staged / "etc/pilotgw/gateway.env")
    gateway_args = gateway_cli._parser().parse_args(shlex.split(gw["PILOT_GATEWAY_FLAGS"]))
    assert gateway_args.subnet == "10.4.0.0/16" and gateway_args.targets == []
    # The container images' default configs load without unknown keys.
    image_cfg = daemon_config.build({"config": str(ROOT / "daemon/daemon.json")}, env={})
    assert not [n for n in image_cfg.notes if "unknown key" in n]
    rv_image = json.loads((ROOT / "rendezvous/rendezvous.json").read_text())
    assert set(k.replace("-", "_") for k in rv_image) <= set(rendezvous_cli.DEFAULTS)


def test_rerun_upgrades_in_place_and_keeps_edited_config(staged: Path) -> None:
    daemon_env = staged / "etc/pilotgw/daemon.env"
    edited = daemon_env.read_text().replace("127.0.0.1:9000", "127.0.0.2:9000")
    daemon_env.write_text(edited)
    proc = _install(staged / "wheels", staged)
    assert proc.returncode == 0, proc.stderr
    assert "kept existing" in proc.stdout
    assert daemon_env.read_text() == edited


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown argument" in proc.stderr
    proc = subprocess.run(
        ["bash", str(INSTALL), "--root", str(tmp_path), "--prefix", "relative"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and "absolute" in proc.stderr
