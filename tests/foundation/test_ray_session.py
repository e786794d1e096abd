"""A Ray that dgnode starts: the job API on loopback only, and no request served without the token."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent('''
    import json, os, urllib.request, urllib.error
    import psutil, ray
    from dgnode.ray_session import ray_session

    os.environ.pop("RAY_ADDRESS", None)
    with ray_session(dashboard=True):
        me = os.getpid()
        family = {p.pid: p.name() for p in psutil.Process(me).children(recursive=True)}
        family[me] = "driver"
        listeners = sorted({(c.laddr.ip, c.laddr.port, family[c.pid]) for c in psutil.net_connections(kind="inet")
                            if c.status == psutil.CONN_LISTEN and c.pid in family})
        answers = {}
        for ip, port, name in listeners:
            if ip != "127.0.0.1":
                continue  # requests go to loopback only
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs/", method="POST",
                                             data=json.dumps({"entrypoint": "echo pwned"}).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    answers[port] = reply.status
            except urllib.error.HTTPError as error:
                answers[port] = error.code
            except OSError:
                answers[port] = None  # not an HTTP server (a gRPC port)
        dashboard = ray.get_runtime_context().get_node_id() and ray._private.worker.global_worker.node.address_info["webui_url"]
    print(json.dumps({"listeners": listeners, "answers": answers, "dashboard": dashboard}))
''')


@pytest.mark.slow
def test_local_ray_serves_no_unauthenticated_request(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={k: v for k, v in __import__("os").environ.items() if k != "RAY_AUTH_MODE"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    host, port = result["dashboard"].rsplit(":", 1)
    assert host in ("127.0.0.1", "http://127.0.0.1")  # the dashboard and its job API: loopback only
    dashboard = [row for row in result["listeners"] if row[1] == int(port)]
    assert dashboard and {row[0] for row in dashboard} == {"127.0.0.1"}
    http = {int(p): code for p, code in result["answers"].items() if code is not None}
    assert int(port) in http and set(http.values()) == {401}, http  # a job without the token: refused


def test_a_local_ray_without_authentication_is_refused(monkeypatch):
    from dgnode.errors import DgnodeError
    from dgnode.ray_session import ray_session

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setattr("ray.is_initialized", lambda: False)  # as if no Ray ran in this test process
    with pytest.raises(DgnodeError, match="RAY_AUTH_MODE=disabled: dgnode does not start a Ray"):
        with ray_session():
            pass


HOLDER = textwrap.dedent('''
    import os, time
    import psutil
    from dgnode.ray_session import ray_session

    os.environ.pop("RAY_ADDRESS", None)
    with ray_session(dashboard=True):
        family = [p.pid for p in psutil.Process().children(recursive=True)]
        print(" ".join(map(str, family)), flush=True)
        time.sleep(600)
''')


@pytest.mark.slow
def test_nothing_of_a_killed_drivers_ray_keeps_running(tmp_path):
    """SIGKILL the driver of a dgnode-started Ray (dashboard, agents): every process it started,
    the agents included, is gone within seconds, so nothing keeps listening."""
    import os
    import signal
    import time

    import psutil

    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"})
    try:
        line = holder.stdout.readline()
        assert line.strip(), "the driver printed no processes"
        time.sleep(3)  # the raylet starts its agents after the driver connects
        family = {int(pid) for pid in line.split()}
        family |= {child.pid for pid in family if psutil.pid_exists(pid)
                   for child in psutil.Process(pid).children(recursive=True)}
        assert len(family) >= 4, family
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 20
    alive = family
    while time.monotonic() < deadline:
        alive = {pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}
        if not alive:
            break
        time.sleep(0.5)
    for pid in alive:  # end what we started, then fail
        with __import__("contextlib").suppress(psutil.Error):
            psutil.Process(pid).kill()
    assert not alive, [psutil.Process(p).cmdline()[:3] for p in alive if psutil.pid_exists(p)]
