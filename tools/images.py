#!/usr/bin/env python3
"""Build pilotgw's container images without any container registry.

No registry is reachable on the development machines and in CI, so every
image starts from a Debian base made here: ``debootstrap --variant=minbase``
from the same mirror and release apt uses on this host, with python3,
python3-venv, iproute2, nftables and curl already inside, imported with
``docker import``. The root filesystem tarball is cached under
``/var/cache/pilotgw`` (keyed by release, mirror and package list), and the
image is imported only when the engine does not have it, so a warm run
costs seconds. pilotgw and its dependencies are built as wheels on the host
(``pip wheel``) and copied into each build context; the images install them
with ``pip --no-index``.

With a registry, pass ``--base-image python:3.11-slim`` (or any Debian-like
image): the Dockerfiles install whatever of python3/iproute2/nftables/curl
the base lacks with apt.

Images (``--tag`` sets the tag, default ``latest``):

- ``pilotgw/daemon``      ``daemon/``        pilot-daemon (+ gateway, pilotctl)
- ``pilotgw/rendezvous``  ``rendezvous/``    pilot-rendezvous
- ``pilotgw/router``      ``deploy/router/`` NAT router for the Compose lab

All three share their first layers (base, packages, wheels), so the second
and third builds reuse the first's.

Usage::

    tools/images.py build [--base-image IMG] [--tag TAG] [--only NAME ...] [--json]
    tools/images.py base [--json]           # only make/import the Debian base
    tools/images.py remove [--json]         # remove the pilotgw images (not the cached tarball)

Needs the ``docker`` Python package (``pip install -e '.[test]'``) and a
running engine (``tools/dockerd.py start``); the base needs root and
``debootstrap``. Exit status: 0 on success, 1 on failure (message and
error code on stderr, or in the ``--json`` object), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("PILOTGW_CACHE", "/var/cache/pilotgw"))
BASE_REPO = "pilotgw/debian"
BASE_PACKAGES = ("python3", "python3-venv", "iproute2", "nftables", "curl", "ca-certificates")
IMAGES = {
    "daemon": ROOT / "daemon",
    "rendezvous": ROOT / "rendezvous",
    "router": ROOT / "deploy" / "router",
}
# The engine here speaks API 1.41; "auto" negotiates that and also works with newer engines.
API_VERSION = os.environ.get("DOCKER_API_VERSION", "auto")


class BuildError(Exception):
    """A step failed; ``code`` names which (machine-readable)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _client() -> Any:
    try:
        import docker
    except ImportError:
        raise BuildError("the 'docker' Python package is missing: pip install docker", "no-sdk") from None
    try:
        client = docker.from_env(version=API_VERSION, timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise BuildError(f"no Docker engine answers ({exc}); start one with tools/dockerd.py start", "no-engine") from None
    return client


def apt_source() -> tuple[str, str]:
    """(mirror URL, release) of the host's main Debian source, as apt uses it.

    Reads deb822 ``*.sources`` and one-line ``*.list`` files; the first entry
    for the plain ``debian`` archive (not -security, not -updates) wins.
    """
    candidates: list[Path] = []
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        candidates.append(legacy)
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in candidates:
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (line.partition(":") for line in stanza.splitlines() if not line.startswith("#"))
                    if v
                )
                if "deb" not in fields.get("types", "").split() or "enabled" in fields and fields["enabled"] == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        if _is_main_suite(uri, suite):
                            return uri.rstrip("/"), suite
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb" and _is_main_suite(parts[1], parts[2]):
                    return parts[1].rstrip("/"), parts[2]
    raise BuildError("no Debian source in /etc/apt/sources.list*: cannot debootstrap", "no-apt-source")


def _is_main_suite(uri: str, suite: str) -> bool:
    return uri.rstrip("/").endswith("/debian") and "-" not in suite


def base_tag() -> str:
    """``pilotgw/debian:<release>-<hash>``: changes when the mirror, release or packages do."""
    mirror, release = apt_source()
    key = hashlib.sha256(f"{mirror} {release} minbase {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:10]
    return f"{BASE_REPO}:{release}-{key}"


def base_tarball(tag: str) -> Path:
    return CACHE / "base" / (tag.split(":", 1)[1] + ".tar")


def make_base_tarball(tag: str, timings: dict[str, float]) -> Path:
    """debootstrap a minbase root filesystem and pack it (cached)."""
    tarball = base_tarball(tag)
    if tarball.exists():
        return tarball
    if os.geteuid() != 0:
        raise BuildError("debootstrap needs root", "not-root")
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed (apt-get install debootstrap)", "no-debootstrap")
    mirror, release = apt_source()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        t0 = time.monotonic()
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                release,
                str(rootfs),
                mirror,
            ],
            "debootstrap",
        )
        # Images never need the package lists or caches debootstrap leaves.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / sub).glob("*"):
                if item.is_file():
                    item.unlink()
        timings["debootstrap"] = time.monotonic() - t0
        t0 = time.monotonic()
        partial = tarball.with_suffix(".partial")
        # Documentation, manuals and translations are a third of a minbase system.
        excludes = [f"--exclude=./usr/share/{d}/*" for d in ("doc", "man", "info", "locale")]
        _run(["tar", "--numeric-owner", *excludes, "-C", str(rootfs), "-cf", str(partial), "."], "tar")
        partial.replace(tarball)
        timings["pack"] = time.monotonic() - t0
    return tarball


def ensure_base(client: Any, timings: dict[str, float]) -> str:
    """Import the cached base into the engine unless it is already there."""
    import docker

    tag = base_tag()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    tarball = make_base_tarball(tag, timings)
    t0 = time.monotonic()
    repo, version = tag.split(":", 1)
    client.api.import_image_from_file(str(tarball), repository=repo, tag=version, changes=["CMD [\"/bin/bash\"]"])
    client.images.get(tag).tag(BASE_REPO, "local")
    timings["import"] = time.monotonic() - t0
    return tag


def build_wheels(dest: Path, timings: dict[str, float]) -> list[str]:
    """pilotgw and its runtime dependencies as wheels (pip's cache makes reruns quick)."""
    t0 = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), str(ROOT)], "pip-wheel")
    timings["wheels"] = time.monotonic() - t0
    return sorted(p.name for p in dest.glob("*.whl"))


def _run(cmd: list[str], code: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{' '.join(cmd[:3])}... failed ({proc.returncode}):\n{tail}", code)


def _stream(lines: Iterator[dict[str, Any]], name: str) -> None:
    log: list[str] = []
    for chunk in lines:
        if "stream" in chunk:
            log.append(chunk["stream"])
        if "error" in chunk:
            tail = "".join(log[-20:])
            raise BuildError(f"building {name}: {chunk['error'].strip()}\n{tail}", "build-failed")


def build(base_image: str | None, tag: str, only: list[str]) -> dict[str, Any]:
    """Build the images; returns their ids, sizes and the time of each step."""
    client = _client()
    timings: dict[str, float] = {}
    base = base_image or ensure_base(client, timings)
    images: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pilotgw-images-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheel_names = build_wheels(wheels, timings)
        for name in only or list(IMAGES):
            context = Path(tmp) / name
            shutil.copytree(IMAGES[name], context)
            shutil.copytree(wheels, context / "wheels")
            ref = f"pilotgw/{name}:{tag}"
            previous = _image_id(client, ref)
            t0 = time.monotonic()
            # Host networking: apt inside RUN steps (registry bases only) needs a
            # network, and the lab engine runs without the default bridge.
            _stream(
                client.api.build(
                    path=str(context),
                    tag=ref,
                    buildargs={"BASE_IMAGE": base},
                    network_mode="host",
                    rm=True,
                    forcerm=True,
                    decode=True,
                ),
                name,
            )
            timings[f"build-{name}"] = time.monotonic() - t0
            image = client.images.get(ref)
            if previous and previous != image.id:
                # The replaced image and its now-unused layers would pile up with every rebuild.
                _remove_quietly(client, previous)
            images[name] = {"ref": ref, "id": image.short_id, "size_mb": round(image.attrs["Size"] / 1e6, 1)}
    return {"base": base, "images": images, "wheels": wheel_names, "timings": {k: round(v, 1) for k, v in timings.items()}}


def _image_id(client: Any, ref: str) -> str | None:
    import docker

    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def _remove_quietly(client: Any, image_id: str) -> None:
    """Remove an untagged image; keep it if a container still uses it."""
    import docker

    try:
        client.images.remove(image_id)
    except docker.errors.APIError:
        pass


def remove(tag: str) -> dict[str, Any]:
    """Remove the pilotgw images of ``tag`` (the base image and tarball stay cached)."""
    import docker

    client = _client()
    removed = []
    for name in IMAGES:
        ref = f"pilotgw/{name}:{tag}"
        try:
            client.images.remove(ref)
            removed.append(ref)
        except docker.errors.ImageNotFound:
            pass
    return {"removed": removed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "base", "remove"])
    parser.add_argument("--base-image", help="build FROM this image instead of the local Debian base")
    parser.add_argument("--tag", default="latest", help="tag of the built images (default: latest)")
    parser.add_argument("--only", nargs="+", choices=sorted(IMAGES), default=[], help="build only these images")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        if args.command == "build":
            result = build(args.base_image, args.tag, args.only)
        elif args.command == "base":
            timings: dict[str, float] = {}
            result = {"base": ensure_base(_client(), timings), "timings": timings}
        else:
            result = remove(args.tag)
    except BuildError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "code": exc.code}))
        else:
            print(f"images.py: {exc} (error code: {exc.code})", file=sys.stderr)
        return 1
    result["seconds"] = round(time.monotonic() - t0, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
