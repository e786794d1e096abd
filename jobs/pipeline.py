"""Ray job: the whole chain, corpus -> scan -> extract -> tune -> best model on test (`dgnode pipeline`).

    ray job submit --working-dir . -- bash -c 'python jobs/pipeline.py --workdir "$DGNODE_DATA_URI/pipeline" \
        --corpus_root "$IEMOCAP_ROOT" --checkpoint "$IMAGEBIND_CHECKPOINT" --tune.trials 64'

Without a corpus it generates a mini-IEMOCAP (`--dataset meld`: a mini MELD release) and uses the
tiny random-init ImageBind (`make demo`, `make demo DATASET=meld`).
"""

from _entry import run

if __name__ == "__main__":
    run("pipeline")
