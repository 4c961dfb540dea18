#!/usr/bin/env python3
"""Builds a container image for Vigil's tests as an OCI image-layout tarball, from files on this
machine (nothing is pulled), for `ctr images import`.

    image.py OUT.tar --name REF [--entrypoint JSON] [--cmd JSON] [--workdir DIR]
             [--file HOST:PATH[:MODE]]... [--text PATH=CONTENT]... [--symlink PATH=TARGET]... [--dir PATH]...

One layer; the config names amd64/linux (or the machine's architecture).
"""
import argparse
import hashlib
import io
import json
import os
import platform
import tarfile
import time


def add_dir(tar, path, seen):
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub and sub not in seen:
            info = tarfile.TarInfo(sub)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if sub == "tmp" else 0o755
            info.mtime = int(time.time())
            tar.addfile(info)
            seen.add(sub)


def layer(args):
    buffer = io.BytesIO()
    seen = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in args.dir:
            add_dir(tar, path, seen)
        for spec in args.symlink:
            path, target = spec.split("=", 1)
            add_dir(tar, os.path.dirname(path.strip("/")), seen)
            info = tarfile.TarInfo(path.strip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
        for spec in args.file:
            parts = spec.split(":")
            host, path = parts[0], parts[1]
            add_dir(tar, os.path.dirname(path.strip("/")), seen)
            info = tar.gettarinfo(host, arcname=path.strip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if len(parts) > 2:
                info.mode = int(parts[2], 8)
            with open(host, "rb") as f:
                tar.addfile(info, f)
        for spec in args.text:
            path, content = spec.split("=", 1)
            add_dir(tar, os.path.dirname(path.strip("/")), seen)
            data = content.encode()
            info = tarfile.TarInfo(path.strip("/"))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def blob(tar, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--name", required=True)
    parser.add_argument("--entrypoint", type=json.loads, default=None)
    parser.add_argument("--cmd", type=json.loads, default=None)
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--file", action="append", default=[])
    parser.add_argument("--text", action="append", default=[])
    parser.add_argument("--symlink", action="append", default=[])
    parser.add_argument("--dir", action="append", default=[])
    args = parser.parse_args()

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    layer_tar = layer(args)
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": args.entrypoint, "Cmd": args.cmd, "WorkingDir": args.workdir,
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]},
    }
    with tarfile.open(args.out, "w") as tar:
        layer_desc = blob(tar, layer_tar)
        config_desc = blob(tar, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
        }
        manifest_desc = blob(tar, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc,
                           "annotations": {"org.opencontainers.image.ref.name": args.name}}],
        }
        for name, content in (("oci-layout", {"imageLayoutVersion": "1.0.0"}), ("index.json", index)):
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
