"""`dgnode corpus ...` subcommands (filled in by the corpus stage)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="generate or scan a raw IEMOCAP tree")
    corpus.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)
