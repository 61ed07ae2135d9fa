"""A real remote builder on this machine: Debian's sshd on 127.0.0.1 and, behind it, a
`nix-daemon --stdio` with a store of its own, reached as Nix's `builders` reach one
(`ssh-ng://`).

The remote store has the client's store directory (store paths must be the same) but
lives elsewhere on disk (`local?store=...&real=...`), as a second machine's would: the
client copies each build's inputs there and the outputs back. Nix builds in a store kept
elsewhere only inside its sandbox, so the remote side runs sandboxed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def remote_builder_missing() -> str | None:
    """Why no remote builder can be set up here, or None."""
    for tool, package in ((SSHD, "openssh-server"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"), ("nix-daemon", "nix-bin")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package}); the remote-builder test needs it"
    if os.geteuid() != 0:
        return "sshd (for the remote builder) needs root here"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RemoteBuilder:
    """sshd on 127.0.0.1:<port>, logging in root with a key of its own; stop() ends it."""

    def __init__(self, root: Path, store_dir: str, system: str) -> None:
        self.root = root
        self.system = system
        self.port = _free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.key = root / "id_ed25519"
        for key in (root / "host_ed25519", self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (root / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        remote = root / "remote-store"
        self.program = root / "remote-nix-daemon"
        self.program.write_text(
            "#!/bin/sh\n"
            "export NIX_CONFIG='experimental-features = nix-command flakes\n"
            "sandbox = true\nsandbox-paths = /bin /usr /lib /lib64\nsubstituters =\nbuild-users-group ='\n"
            f"exec nix-daemon \"$@\" --store 'local?store={store_dir}&real={remote}/store&state={remote}/state&log={remote}/log'\n"
        )
        self.program.chmod(0o755)
        config = root / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {root / 'host_ed25519'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"PidFile {root / 'sshd.pid'}\n"
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        self.log = (root / "sshd.log").open("w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port}: {(root / 'sshd.log').read_text()}")

    @property
    def uri(self) -> str:
        """The store URI Nix names the machine by (its internal-json log has it)."""
        return f"ssh-ng://root@127.0.0.1?remote-program={self.program}"

    def nix_config(self) -> str:
        """The `builders` line (and what goes with it) for the client's NIX_CONFIG."""
        return f"builders = {self.uri} {self.system} {self.key} 4 1 - - -\nbuilders-use-substitutes = false\n"

    def env(self) -> dict[str, str]:
        """NIX_SSHOPTS: the port, and no known_hosts to ask about or write."""
        opts = f"-p {self.port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
        return {"NIX_SSHOPTS": opts}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
