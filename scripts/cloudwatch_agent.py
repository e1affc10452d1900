#!/usr/bin/env python3
"""Installs the Amazon CloudWatch agent and puts its configuration in place, read as JSON from standard input:
{"package_url": "https://...amazon-cloudwatch-agent.deb", "files": {path: text, ...}}.

- The package: Amazon's .deb (Debian 12 and Ubuntu 24.04 package no CloudWatch agent), downloaded over HTTPS only
  from the region's amazoncloudwatch-agent bucket, installed with dpkg, only when the agent is not installed yet.
- The files (the agent's JSON and the Prometheus scrape configuration, under /opt/aws/amazon-cloudwatch-agent/etc;
  the certificate check, /usr/local/lib/wallarm-deploy/cert_expiry.py, and its systemd service and timer, nothing
  else) are replaced atomically when they differ. A check the input no longer names (tls turned off) is disabled
  and its files removed.
- The certificate check's timer is (re)enabled after a systemd daemon-reload when its files changed, and the check
  runs once right after the agent (re)loaded, without waiting for it: its result goes to the journal
  (`journalctl -u wallarm-cert-expiry`), and a bad certificate never fails this step.
- The agent (re)loads them with `amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:...` when they
  changed, or when the last load did not finish: a state file holding the hash of what was loaded is written only
  after the agent took it. A run killed at any line therefore loads again next time; a second run with the same
  input changes nothing, restarts nothing and says so. One run at a time (flock).
Runs as root. WALLARM_ROOT, empty in production, puts the files under another directory (tests).
Exit codes: 0 done or nothing to do, 1 failed, 2 bad input (nothing changed).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("WALLARM_ROOT", "").rstrip("/")
AGENT_ETC = "/opt/aws/amazon-cloudwatch-agent/etc/"
CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
CHECK_UNIT = "wallarm-cert-expiry"
CHECK_FILES = ("/usr/local/lib/wallarm-deploy/cert_expiry.py", f"/etc/systemd/system/{CHECK_UNIT}.service",
               f"/etc/systemd/system/{CHECK_UNIT}.timer")
STATE_DIR = "/var/lib/wallarm-deploy"
STATE = f"{STATE_DIR}/cloudwatch-agent.sha256"
LOCK = f"{STATE_DIR}/cloudwatch-agent.lock"
PACKAGE_PREFIX = "https://amazoncloudwatch-agent-"
TIMEOUT = 300


class Failed(Exception):
    pass


def log(message: str) -> None:
    print(f"cloudwatch-agent: {message}", file=sys.stderr, flush=True)


def host(path: str) -> str:
    return ROOT + path


def run(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failed(f"{argv[0]} could not run: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        raise Failed(f"{' '.join(argv[:3])} exited {done.returncode}: {last}")


def read_input(raw: bytes) -> tuple[str, dict[str, str]]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("standard input is not JSON") from None
    if not isinstance(data, dict) or set(data) != {"package_url", "files"}:
        raise ValueError("the input must be an object with package_url and files, nothing else")
    url, files = data["package_url"], data["files"]
    if not (isinstance(url, str) and url.startswith(PACKAGE_PREFIX) and url.endswith(".deb")):
        raise ValueError(f"package_url must be an https {PACKAGE_PREFIX}... .deb URL, got {url!r}")
    if not isinstance(files, dict) or not files:
        raise ValueError("files must name at least one file")
    for path, text in files.items():
        allowed = (path.startswith(AGENT_ETC) and "/.." not in path and "\0" not in path) or path in CHECK_FILES
        if not (isinstance(text, str) and allowed):
            raise ValueError(f"{path!r} is not a file under {AGENT_ETC} (or the certificate check's) with text content")
    checks = [p for p in CHECK_FILES if p in files]
    if checks and len(checks) != len(CHECK_FILES):
        raise ValueError(f"the certificate check needs all of {', '.join(CHECK_FILES)}, got only {', '.join(checks)}")
    return url, files


def install(url: str) -> bool:
    if os.path.exists(host(CTL)):
        return False
    fd, deb = tempfile.mkstemp(suffix=".deb")
    os.close(fd)
    try:
        log(f"downloading {url}")
        run("curl", "--fail", "--silent", "--show-error", "--location", "--proto", "=https", "--retry", "5",
            "--retry-delay", "5", "--max-time", "300", "-o", deb, url)
        log("installing the agent package")
        run("dpkg", "-i", deb)
    finally:
        os.unlink(deb)
    if not os.path.exists(host(CTL)):
        raise Failed(f"the package installed no {CTL}")
    return True


def write_atomically(path: str, text: str) -> None:
    target = host(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".wallarm-deploy-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def current(path: str) -> str | None:
    try:
        with open(host(path), encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def retire_check() -> list[str]:
    """The check the input no longer names: timer stopped and disabled, then its files removed."""
    present = [p for p in CHECK_FILES if os.path.exists(host(p))]
    if present:
        run("systemctl", "disable", "--now", f"{CHECK_UNIT}.timer")
        for path in present:
            os.unlink(host(path))
            log(f"removed {path}")
        run("systemctl", "daemon-reload")
    return present


def apply(url: str, files: dict[str, str], agent_config: str) -> dict:
    installed = install(url)
    check = CHECK_FILES[0] in files
    removed = [] if check else retire_check()
    changed = [p for p, text in files.items() if current(p) != text]
    for path in changed:
        write_atomically(path, files[path])
        log(f"wrote {path}")
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    if not changed and not installed and not removed and current(STATE) == digest + "\n":
        log("no change: the agent runs this configuration already; nothing restarted")
        return {"installed": False, "changed": [], "restarted": False}
    run(host(CTL), "-a", "fetch-config", "-m", "ec2", "-s", "-c", f"file:{agent_config}")
    if check:
        run("systemctl", "daemon-reload")
        run("systemctl", "enable", f"{CHECK_UNIT}.timer")
        run("systemctl", "restart", f"{CHECK_UNIT}.timer")
        run("systemctl", "start", "--no-block", f"{CHECK_UNIT}.service")
    write_atomically(STATE, digest + "\n")
    log("the agent (re)started on this configuration" + (", the certificate check enabled" if check else ""))
    return {"installed": installed, "changed": changed, "restarted": True}


def main() -> int:
    if sys.argv[1:]:
        log(f"ERROR: unknown arguments {sys.argv[1:]}: the input comes on standard input; nothing was changed")
        return 2
    try:
        url, files = read_input(sys.stdin.buffer.read())
    except ValueError as exc:
        log(f"ERROR: {exc}; nothing was changed")
        return 2
    agent_config = next((p for p in files if p.endswith(".json")), None)
    if agent_config is None:
        log("ERROR: no .json agent configuration among the files; nothing was changed")
        return 2
    os.makedirs(host(STATE_DIR), exist_ok=True)
    with open(host(LOCK), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            summary = apply(url, files, agent_config)
        except (Failed, OSError) as exc:
            log(f"ERROR: {exc}")
            return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
