"""Strongroom quickstart (Python): an embedded, encrypted secret store in ./strongroom-data.

The same steps as examples/quickstart.rs. First run: creates the SQLite store, initialises it
with one unseal key kept in strongroom-data/unseal.key (mode 0600), mounts `secret/` as KV v2.
Later runs: unseal from that key file. Every run writes a new version of `secret/app/db` and
reads it back.

    pip install ./bindings-python
    python examples/python/quickstart.py

Keeping the unseal key next to the data (and the root token in a file) is for a demo only: in
production the key comes from a secret manager, a KMS or an env var, and the root token is
revoked once real policies and auth methods exist.
"""

from __future__ import annotations

import os
import pathlib
import uuid

import strongroom


def write_private(path: pathlib.Path, contents: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(contents)


def main() -> None:
    data_dir = pathlib.Path("strongroom-data")
    data_dir.mkdir(exist_ok=True)
    key_file = data_dir / "unseal.key"
    token_file = data_dir / "root.token"

    config = strongroom.Config.sqlite(data_dir / "strongroom.db").unseal_key_file(key_file)
    with strongroom.Strongroom.open(config) as sr:
        if sr.is_initialized():
            print(f"unsealed an existing store in {data_dir} (key from {key_file})")
            token = strongroom.Secret(token_file.read_text().strip())
        else:
            token = sr.init_with_key_file(key_file)
            write_private(token_file, token.reveal())
            sr.client(token).sys().enable_mount("secret", "kv", options={"version": "2"})
            print(
                f"initialised a new store in {data_dir} (unseal key in {key_file}, "
                f"root token in {token_file}, both mode 0600)"
            )

        kv = sr.client(token).kv("secret")
        written = kv.put("app/db", {"username": "app", "password": uuid.uuid4().hex})
        print(f"wrote secret/app/db version {written.version} at {written.created_time.isoformat()}")

        secret = kv.get("app/db")
        if secret is None:
            raise SystemExit("secret/app/db vanished")
        password = secret.data.get("password", "")
        print(
            f"read secret/app/db version {secret.version}: username={secret.data.get('username', '')}, "
            f"password=<{len(password)} characters, not printed>"
        )
        meta = kv.metadata("app/db")
        if meta is None:
            raise SystemExit("metadata vanished")
        print(f"secret/app/db keeps {len(meta['versions'])} versions (current {meta['current_version']})")


if __name__ == "__main__":
    main()
