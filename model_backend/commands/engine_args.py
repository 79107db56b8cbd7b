"""Options that choose and load an engine, shared by the commands that ask a model (``ask``, ``find``,
``eval``): ``--model --backend --endpoint --family --timeout --thinking --device --quantization``; the
API key of a remote
server comes from the environment variable ``EARTHGPTX_API_KEY``, never from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Iterable, List

from ..core.engine_options import DEFAULT_MODEL, DEVICES, QUANTIZATIONS
from ..core.errors import InvalidArgumentError
from ..core.families import FAMILIES
from ..core.interface import MAX_REGIONS
from ..models.engine import Engine

API_KEY_ENV = "EARTHGPTX_API_KEY"


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--model, --backend, --endpoint, --family, --timeout, --thinking, --device, --quantization (read by
    ``engine_from_args``)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or hub id (default {DEFAULT_MODEL})")
    parser.add_argument("--backend", choices=["local", "openai"], default="local",
                        help="local transformers model, or an OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    parser.add_argument("--endpoint", action="append",
                        help="base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (find: "
                             "repeat it to spread the tiles over several servers)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="qwen3_vl",
                        help="coordinate convention of the remote model (openai backend)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="openai backend: the longest wait to connect, for the first piece of an answer and "
                             "between two pieces (keep-alives do not count; default 120)")
    parser.add_argument("--thinking", action="store_true",
                        help="let a thinking model (Qwen3.5, Qwen3 Thinking) think before it answers (default: it "
                             "is asked not to); its thoughts are kept apart, never parsed for regions")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="auto",
                        help="auto: 4-bit NF4 on CUDA, bfloat16 on MPS and CPU")


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The engine the options of ``add_engine_options`` name (a local model is loaded here)."""
    if args.backend == "openai" and args.endpoint and len(args.endpoint) > 1:
        raise InvalidArgumentError("several --endpoint values spread the tiles of find; give one here")
    return engines_from_args(args)[0]


def engines_from_args(args: argparse.Namespace) -> List[Engine]:
    """One engine per ``--endpoint`` (openai backend), or the one local model (loaded here)."""
    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.backend == "openai":
        if not args.endpoint:
            raise InvalidArgumentError("--backend openai needs --endpoint URL")
        from ..models.remote import RemoteEngine

        return [RemoteEngine(endpoint, args.model, args.family, api_key=os.environ.get(API_KEY_ENV),
                             timeout=args.timeout, thinking=args.thinking) for endpoint in args.endpoint]
    if args.endpoint:
        raise InvalidArgumentError("--endpoint goes with --backend openai")
    from ..models.loading import LoadPolicy
    from ..models.local import LocalEngine

    return [LocalEngine(args.model, LoadPolicy(args.device, args.quantization), on_status=progress,
                        thinking=args.thinking)]


def say_unfinished(finish_reasons: Iterable[str], max_new_tokens: int, cut_regions: int = 0) -> None:
    """Say on stderr how many answers were cut at ``max_new_tokens`` or ended before the server's end
    marker (they are kept, with that ``finish_reason``), and how many regions past the cap of an
    answer were not kept."""
    if cut_regions:
        print(f"{cut_regions} region(s) past the first {MAX_REGIONS} of an answer (a repetition loop?) were not "
              f"kept.", file=sys.stderr)
    counts = Counter(finish_reasons)
    if counts["length"]:
        print(f"{counts['length']} answer(s) reached --max-new-tokens {max_new_tokens} and were cut there "
              f"(kept, finish_reason 'length').", file=sys.stderr)
    if counts["incomplete"]:
        print(f"{counts['incomplete']} answer(s) ended before the server's end-of-answer marker (the stream "
              f"was cut): what came is kept, finish_reason 'incomplete'.", file=sys.stderr)
