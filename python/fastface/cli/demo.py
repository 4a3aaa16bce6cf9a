"""``fastface demo``: align + embed + search on synthetic faces the command makes itself."""
from __future__ import annotations

from .. import _core
from ..demo import run_demo


def add_arguments(parser) -> None:
    parser.add_argument("--identities", type=int, default=50, help="synthetic identities (default 50)")
    parser.add_argument("--photos", type=int, default=4, help="photos per identity (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="ncnn threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    result = run_demo(args.identities, args.photos, args.threads, args.seed)
    print(f"fastface demo: {result.identities} synthetic identities x {result.photos} photos, "
          f"random-weight {result.dim}-d network, kernels: {_core.best_isa()}")
    print(f"  align  {result.align_us_per_face:8.1f} us/face   (similarity estimate + bilinear warp)")
    print(f"  embed  {result.embed_ms_per_face:8.2f} ms/face   (ncnn, {args.threads} thread(s))")
    print(f"  search {result.search_us_per_query:8.1f} us/query  (top-1 of {result.identities})")
    print(f"  top-1 identification accuracy: {result.accuracy:.1%} ({result.correct}/{result.queries})")
    return 0 if result.accuracy >= 0.9 else 1
