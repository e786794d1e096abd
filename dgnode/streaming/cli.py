"""`dgnode predict`: per-utterance predictions of a trained run, streamed (causal runs) or batch."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict the utterances of dialogues from a feature store with a trained run (--stream: one at a time)",
        description="With --stream, dialogues are read from the store one utterance at a time and each is predicted "
        "from what came before it (a causal run, trained with wf=0, is required); prints every prediction and a "
        "latency summary. Without --stream, each dialogue is predicted in one pass over the whole dialogue.",
    )
    parser.add_argument("--run", required=True, help="run directory (config.yaml + best.pt)")
    parser.add_argument("--stream", action="store_true", help="stream utterance by utterance (causal runs only)")
    parser.add_argument("--store", default=None, help="feature store (default: the one the run was trained on)")
    parser.add_argument("--dialog", nargs="+", default=None, metavar="ID", help="dialogue ids (default: every dialogue of --split)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"), help="split to predict when no --dialog is given")
    parser.add_argument("--limit", type=int, default=None, help="at most this many dialogues")
    parser.add_argument("--verify", action="store_true",
                        help="with --stream: also run the whole dialogue through the causal model and count differing predictions")
    parser.add_argument("--out", default=None, help="write the per-utterance predictions to this CSV")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not every utterance")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument("--media", default=None, metavar="MANIFEST",
                        help="with --stream: embed each utterance from its raw media (this manifest's paths) "
                             "with the store's own extraction model instead of reading stored vectors")
    parser.add_argument("--checkpoint", default=None, help="with --media: the ImageBind checkpoint the store was extracted with")
    parser.set_defaults(handler=predict_command)


def predict_command(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import pandas as pd
    import torch
    from rich.console import Console
    from rich.table import Table

    from dgnode.errors import InputError
    from dgnode.features.dataset import collate
    from dgnode.features.store import FeatureStore
    from dgnode.streaming.predictor import StreamingPredictor, latency_summary, require_causal
    from dgnode.training.config import load_train_config
    from dgnode.training.trainer import CONFIG_FILE, load_run

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    config_path = Path(args.run) / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"not a finished run: {CONFIG_FILE} is missing", path=args.run)
    if args.stream:
        require_causal(load_train_config(config_path).model, where=str(config_path))
    elif args.verify or args.media:
        raise InputError("--verify and --media need --stream")
    trainer, config = load_run(args.run, store=args.store, device=args.device)
    data = trainer.data
    conversations = _select(data, args.dialog, args.split, args.limit, config.data.store)
    model = trainer.core_model.eval()

    console = Console(width=max(Console().width, 120))
    rows: list[dict] = []
    latencies: list[float] = []
    mismatches = 0
    if args.stream:
        predictor = StreamingPredictor.from_trainer(trainer)
        # The stream delivers raw vectors as stored; the predictor normalises them itself.
        stored = FeatureStore.open(config.data.store).load(list(trainer.dims))
        frame = stored.frame
        encoder = media_rows = None
        if args.media:
            from dgnode.corpus.manifest import load_manifest
            from dgnode.streaming.media import MediaEncoder

            encoder = MediaEncoder.from_store(config.data.store, args.checkpoint, args.device)
            media_rows = load_manifest(args.media).set_index("utt_id", drop=False)
        ids = frame["dialog_id"].to_numpy()
        for conversation in conversations:
            positions = np.flatnonzero(ids == conversation.dialog_id)
            if frame["utt_id"].iloc[positions].tolist() != conversation.utt_ids:
                raise InputError(f"dialogue {conversation.dialog_id}: stored rows do not match the loaded dialogue", path=config.data.store)
            speakers = frame["speaker"].iloc[positions].astype(str).tolist()
            predictor.start(conversation.dialog_id, speakers=speakers)
            reference = None
            if args.verify:
                with torch.no_grad():
                    reference = model(collate([conversation]).to(trainer.device)).logits.argmax(dim=1).tolist()
            for k, row_index in enumerate(positions.tolist()):
                embed_ms = 0.0
                if encoder is not None:
                    utt = frame["utt_id"].iloc[row_index]
                    if utt not in media_rows.index:
                        raise InputError(f"utterance {utt} is not in the media manifest", path=args.media)
                    started = time.perf_counter()
                    vectors = encoder.encode(media_rows.loc[utt].to_dict())
                    embed_ms = (time.perf_counter() - started) * 1000.0
                else:
                    vectors = {m: stored.vectors[m][row_index] for m in trainer.dims}
                prediction = predictor.push(vectors, speakers[k])
                latencies.append(prediction.latency_ms + embed_ms)
                row = _row(conversation, k, speakers[k], prediction.label, prediction.probabilities, data.label_names)
                row["latency_ms"] = prediction.latency_ms + embed_ms
                if reference is not None:
                    row["batch_label"] = data.label_names[reference[k]]
                    mismatches += int(reference[k] != prediction.label)
                rows.append(row)
                if not args.quiet:
                    _print_row(console, row)
    else:
        for conversation in conversations:
            with torch.no_grad():
                probabilities = torch.softmax(model(collate([conversation]).to(trainer.device)).logits.float(), dim=1).cpu().numpy()
            speakers = [str(int(s)) for s in conversation.speakers]
            for k in range(len(conversation)):
                row = _row(conversation, k, speakers[k], int(probabilities[k].argmax()), probabilities[k], data.label_names)
                rows.append(row)
                if not args.quiet:
                    _print_row(console, row)

    frame = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
    labelled = frame[frame["true"] != ""]
    table = Table(title=f"predict {'--stream ' if args.stream else ''}{args.run} ({config.model.name})", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("dialogues / utterances", f"{len(conversations)} / {len(frame)}")
    if len(labelled):
        table.add_row("accuracy (labelled)", f"{100 * float((labelled['predicted'] == labelled['true']).mean()):.1f}% of {len(labelled)}")
    if args.stream:
        summary = latency_summary(latencies)
        table.add_row("latency per utterance (ms)",
                      f"mean {summary['mean']:.2f}, p50 {summary['p50']:.2f}, p95 {summary['p95']:.2f}, max {summary['max']:.2f}")
        if not predictor.exact:
            table.add_row("note", "adaptive ODE solver: causal up to the solver tolerance only")
        if args.verify:
            table.add_row("differ from batch causal", f"{mismatches} of {len(frame)}")
    if args.out:
        table.add_row("predictions", args.out)
    console.print(table)
    return 1 if mismatches else 0


def _select(data, dialog_ids, split, limit, store):
    from dgnode.errors import InputError

    if dialog_ids:
        by_id = {c.dialog_id: c for c in data.conversations}
        missing = [d for d in dialog_ids if d not in by_id]
        if missing:
            examples = ", ".join(sorted(by_id)[:5])
            raise InputError(f"dialogue(s) {missing} not in the store (it has {len(by_id)}, e.g. {examples})", path=store)
        conversations = [by_id[d] for d in dialog_ids]
    else:
        conversations = data.split(split)
        if not conversations:
            raise InputError(f"the store has no {split} dialogues", path=store)
    return conversations[:limit] if limit else conversations


def _row(conversation, k, speaker, label, probabilities, label_names) -> dict:
    true = int(conversation.labels[k])
    return {
        "dialog_id": conversation.dialog_id,
        "utt_id": conversation.utt_ids[k],
        "position": k,
        "speaker": speaker,
        "predicted": label_names[label],
        "probability": float(probabilities[label]),
        "true": label_names[true] if true >= 0 else "",
    }


def _print_row(console, row: dict) -> None:
    latency = f"  {row['latency_ms']:7.2f} ms" if "latency_ms" in row else ""
    true = row["true"] or "-"
    mark = "" if not row["true"] else (" ✓" if row["true"] == row["predicted"] else " ✗")
    console.print(
        f"{row['utt_id']:<28} #{row['position']:<3} {row['speaker']:<10} {row['predicted']:>6} ({row['probability']:.2f})"
        f"  true {true:>4}{mark}{latency}",
        highlight=False,
        markup=False,
    )
