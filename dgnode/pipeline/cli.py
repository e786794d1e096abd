"""``dgnode pipeline`` (and ``jobs/pipeline.py``): the whole chain as one command or Ray job.

Local:    dgnode pipeline --workdir demo_output
Cluster:  ray job submit --working-dir . -- bash -c 'python jobs/pipeline.py --workdir "$DGNODE_DATA_URI/pipeline" \\
              --corpus_root "$IEMOCAP_ROOT" --checkpoint "$IMAGEBIND_CHECKPOINT" --tune.trials 64'
          (the variables are cluster.yaml's, expanded on the cluster; docs/cluster.md)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dgnode.command import Command
from dgnode.pipeline.run import PipelineConfig

__all__ = ["COMMANDS", "PipelineOptions", "run"]


@dataclass
class PipelineOptions(PipelineConfig):
    """Run every stage: generate or read a raw corpus, scan it, extract ImageBind features, search
    DGODE configurations, test and register the best model, and train the context-free MLP
    baseline beside it. Without a corpus it generates a mini-IEMOCAP (--dataset meld: a mini MELD
    release) whose media carry emotion cues and uses the tiny random-init ImageBind.

    Attributes:
        demo: force the embedded default (mini corpus, tiny model), ignoring IEMOCAP_ROOT/MELD_ROOT/IMAGEBIND_CHECKPOINT
        json: also print the result as JSON (last line)
        progress: show progress bars
    """

    demo: bool = False
    json: bool = False
    progress: bool = True


def run(options: PipelineOptions) -> int:
    import dataclasses

    from rich.console import Console

    from dgnode.pipeline.run import run_pipeline
    from dgnode.pipeline.summary import summary_table

    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(PipelineConfig)}
    result = run_pipeline(PipelineConfig(**values).with_environment(options.demo), progress=options.progress)
    Console().print(summary_table(result))
    if options.json:
        search, baselines = result.search, result.baselines
        print(json.dumps({
            "workdir": str(result.workdir), "store": str(result.store), "search_dir": str(result.search_dir),
            "tracking_uri": result.tracking_uri, "experiment_id": search.experiment_id,
            "parent_run_id": search.parent_run_id, "stored": result.extraction["stored"], "trials": len(search.trials),
            "best_valid_wf1": search.best_valid_wf1, "test": search.test, "model_uri": search.model_uri,
            "baselines": None if baselines is None else {
                "mlp": baselines.mlp, "majority": baselines.majority, "majority_class": baselines.majority_class},
            "plots": {name: str(path) for name, path in result.plots.items()},
            "stage_seconds": result.stage_seconds, "extraction": result.extraction,
        }, default=str))
    return 0


COMMANDS = (
    Command("pipeline", PipelineOptions, run, help="the main job: corpus, scan, extract, tune, best model on test"),
)
