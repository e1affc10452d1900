"""The configure step resolves protectedUpstream's host on the filtering node, before `nginx -t` and the reload,
and refuses a name that means this host or the metadata service: scripts/apply_spec.py run for real in a sandbox,
with resolution answered by a hosts-format fixture (WALLARM_APPLY_HOSTS) or by this machine's own resolver for
`localhost` (deterministic offline)."""

from __future__ import annotations

import json

import pytest

from components import render
from harness.sandbox import Sandbox

HOSTS = """\
# a hosts-format fixture: what the node's resolver answers
10.0.0.10     app.internal
10.0.0.11     app.internal
10.0.0.12     rebound.internal
127.0.0.1     rebound.internal
169.254.169.254  sneaky.internal   # the metadata service under a private zone's name
fd00:ec2::254 sneaky6.internal
::ffff:127.0.0.1 mapped.internal
fe80::1       linklocal.internal
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    sb = Sandbox(tmp_path_factory.mktemp("installed") / "filtering")
    sb.install("filtering")
    return sb


@pytest.fixture
def fl(installed, tmp_path) -> Sandbox:
    return installed.clone(tmp_path / "fl")


@pytest.fixture
def hosts(tmp_path) -> str:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    return str(path)


def _spec(upstream: str) -> dict:
    conf = render.render_nginx_conf(render.render_upstream(["10.0.1.5:3313"], False, False), upstream, "block", 8081)
    return render.filtering_spec(name="filtering-0", nginx_conf=conf, tls=False, mutual_tls=False,
                                 protected_upstream=upstream)


def test_the_spec_names_the_application_host():
    """Guards against the renderer forgetting to ask the node about the application's host."""
    assert _spec("https://App.Internal:8443/base")["upstream_names"] == ["app.internal"]
    assert "upstream_names" not in render.filtering_spec("f", "# conf\n", False, False)


@pytest.mark.parametrize("name,address,reason", [
    ("rebound.internal", "127.0.0.1", "a loopback address"),
    ("sneaky.internal", "169.254.169.254", "the instance metadata service"),
    ("sneaky6.internal", "fd00:ec2::254", "the instance metadata service"),
    ("mapped.internal", "::ffff:127.0.0.1", "a loopback address"),
    ("linklocal.internal", "fe80::1", "a link-local address"),
])
def test_a_name_resolving_inward_is_refused_and_rolled_back(fl, hosts, name, address, reason):
    """Guards against a host name that passed the settings (only the node knows its addresses) sending the
    application's traffic to this host or the metadata service: the configure step fails with one line naming the
    name and the address, before `nginx -t` and the reload, and the files come back as they were."""
    before = fl.tree()
    fl.clear_calls()
    proc = fl.apply(_spec(f"http://{name}:8080/base"), WALLARM_APPLY_HOSTS=hosts)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if "upstream check" in line]
    assert len(lines) == 1 and f"{name} resolves to {address}, {reason}" in lines[0], err
    assert "restored" in lines[0] and "Traceback" not in err
    assert fl.tree() == before, "the refused spec left files behind"
    assert not [c for c in fl.calls() if c.startswith(("nginx", "systemctl"))], \
        f"NGINX was checked or reloaded on the refused files: {fl.calls()}"
    assert fl.journal() is None


def test_a_name_resolving_to_the_application_is_applied(fl, hosts):
    """Guards against the check refusing an ordinary private application (every address is judged, all pass)."""
    proc = fl.apply(_spec("http://app.internal:8080/base"), WALLARM_APPLY_HOSTS=hosts)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "upstream check ok: app.internal resolves to 10.0.0.10, 10.0.0.11" in err
    assert render.NGINX_CONF in json.loads(proc.stdout)["changed"]


def test_an_unresolvable_name_is_left_to_nginx(fl, hosts):
    """Guards against the check inventing its own failure for a name NGINX refuses anyway: it notes it and lets
    `nginx -t` judge (here the stub passes; a real NGINX says `host not found in upstream`)."""
    proc = fl.apply(_spec("http://missing.internal:8080"), WALLARM_APPLY_HOSTS=hosts)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "missing.internal does not resolve here" in proc.stderr.decode()


def test_the_real_resolver_is_asked_without_the_hook(fl):
    """Guards against the check only ever reading the test fixture: without WALLARM_APPLY_HOSTS, getaddrinfo()
    answers, and `localhost` (refused by the settings too; here the spec is rendered directly) resolves to
    loopback from /etc/hosts on every machine, offline."""
    before = fl.tree()
    proc = fl.apply(_spec("http://localhost:8080"))
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "upstream check: localhost resolves to" in err and "a loopback address" in err, err
    assert fl.tree() == before


def test_a_malformed_name_in_the_spec_is_refused(fl):
    """Guards against a spec smuggling something other than a host name to the resolver."""
    spec = _spec("http://app.internal")
    spec["upstream_names"] = ["app internal; rm -rf /"]
    proc = fl.apply(spec)
    assert proc.returncode == 2 and "upstream_names[0]" in proc.stderr.decode(), proc.stderr.decode()
