"""`dgnode cluster check | rehearse` (dgnode.cluster.cli), and docs/cluster.md covering the cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dgnode import cluster as C
from dgnode.cluster import cli
from dgnode.command import run_command


def _dgnode(argv: list[str]) -> int:
    """`dgnode ARGV` with only this package's commands."""
    return run_command(cli.COMMANDS, argv)


def test_cli_check_passes_the_shipped_config(cluster_yaml: Path, tmp_path: Path, capsys, expected_resources: dict,
                                            expected_placeholders: set) -> None:
    out = tmp_path / "check.json"
    assert _dgnode(["cluster", "check", str(cluster_yaml), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["max_hourly_cost_usd"] == 9.552
    assert report["node_types"] == expected_resources
    assert {f["where"] for f in report["findings"]} == expected_placeholders
    assert f"0 error(s), {len(expected_placeholders)} warning(s)" in capsys.readouterr().out


def test_cli_check_fails_on_errors_and_bad_files(cluster_yaml: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text(cluster_yaml.read_text().replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"))
    assert _dgnode(["cluster", "check", str(bad)]) == 1
    assert "1 error(s)" in capsys.readouterr().out
    assert _dgnode(["cluster", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cluster config not found" in capsys.readouterr().err


def test_docs_cover_every_variable_and_access_path(repo_root: Path, config: dict) -> None:
    docs = (repo_root / "docs" / "cluster.md").read_text()
    variables = [o.split()[1].split("=")[0] for o in config["docker"]["run_options"] if o.startswith("--env ")]
    assert variables == [
        "DGNODE_DATA_URI", "DGNODE_STORE", "DGNODE_RUNS", "DGNODE_SEARCHES", "IEMOCAP_ROOT", "IMAGEBIND_CHECKPOINT",
        "DGNODE_WORK_DIR", "MLFLOW_TRACKING_URI", "RAY_AUTH_MODE",
    ]
    for needle in [*variables, "DGNODE_PIP_SPEC", "ray up cluster.yaml", "ray dashboard cluster.yaml",
                   "ray attach cluster.yaml -p 5000", "RAY_AUTH_MODE=token ray job submit", "ray get-auth-token --generate",
                   "dgnode cluster check", "dgnode cluster rehearse", "dgnode-worker", "ray down cluster.yaml",
                   "-L 5000:127.0.0.1:5000", "--max_failures", "mlflow-artifacts", "instance profile"]:
        assert needle in docs, needle


def test_cli_check_reads_cluster_yaml_in_the_working_directory_by_default(repo_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(repo_root)
    assert _dgnode(["cluster", "check"]) == 0
    assert "cluster.yaml: node types" in capsys.readouterr().out


def _report(scale_down_s: float | None) -> C.RehearsalReport:
    stage = C.StageRun("extract.imagebind", "shape", {"CPU": 1, "GPU": 1}, 4, units_done=4,
                       node_types_used={"worker.gpu.a10g.4cpu": 4}, gpu_ids_seen=["0"], seconds=1.0)
    return C.RehearsalReport(
        cluster_yaml="cluster.yaml", node_types={}, head_resources={"CPU": 4}, idle_timeout_minutes=0.1, stages=[stage],
        launched={"worker.gpu.a10g.4cpu": 1}, peak={"worker.gpu.a10g.4cpu": 1}, head_gpus_max=0.0, scale_up_s=2.0,
        scale_down_s=scale_down_s, workers_left=0 if scale_down_s is not None else 1, head_pid=None,
        nodes=[{"node_type": "worker.gpu.a10g.4cpu", "resources": {"CPU": 4, "GPU": 1}, "up_s": 2.0, "down_s": None}],
        startup_s=1.0, stop_s=1.0, total_s=9.0,
    )


def test_cli_rehearse_passes_every_flag_and_writes_the_report(tmp_path: Path, monkeypatch, capsys) -> None:
    calls: list[tuple[tuple, dict]] = []

    def fake_rehearsal(*args, **kwargs) -> C.RehearsalReport:
        calls.append((args, kwargs))
        kwargs["log"]("starting")
        return _report(scale_down_s=3.0)

    monkeypatch.setattr(cli, "rehearse_autoscaling", fake_rehearsal)
    out = tmp_path / "report.json"
    assert _dgnode(["cluster", "rehearse", "--cluster_yaml", "other.yaml", "--rows", "8", "--max_actors", "3",
                    "--trials", "4", "--idle_timeout_minutes", "0.5", "--max_workers_per_type", "1",
                    "--scale_down_timeout", "30", "--json", str(out), "--pid_file", "head.pid", "--log_dir", "logs"]) == 0
    (args, kwargs), = calls
    kwargs.pop("log")
    assert args == ("other.yaml",)
    assert kwargs == {"rows": 8, "max_actors": 3, "trials": 4, "idle_timeout_minutes": 0.5, "max_workers_per_type": 1,
                      "scale_down_timeout_s": 30.0, "pid_file": "head.pid", "log_dir": "logs"}
    assert json.loads(out.read_text())["scale_down_s"] == 3.0
    printed = capsys.readouterr()
    assert "starting" in printed.err and "first GPU worker up after 2.0 s" in " ".join(printed.out.split())

    monkeypatch.setattr(cli, "rehearse_autoscaling", lambda *args, **kwargs: _report(scale_down_s=None))
    assert _dgnode(["cluster", "rehearse"]) == 1  # workers not removed within the wait
    assert "not within the wait (1 left)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("flag", ["--max-actors", "--config-file"])
def test_cli_rehearse_rejects_unknown_flags(flag: str, capsys) -> None:
    assert _dgnode(["cluster", "rehearse", flag, "2"]) == 2
    assert "error" in capsys.readouterr().err
