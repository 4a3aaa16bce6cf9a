"""Coverage-guided fuzzing (atheris, i.e. libFuzzer over Python) of one loader in fuzz/targets.py.

    python fuzz/fuzz_loaders.py <target> [--seconds 20] [--work build/fuzz] [--shared ../shared/data/models]

Seeds come from targets.seeds(); the corpus grows in <work>/corpus/<target> (keep it between
runs to start further in); a crasher is written to <work>/crash-<target>-<sha1> and the run
fails. Add each crasher to tests/fuzz_regressions/<target>/ after fixing it.
Native code is not coverage-instrumented (ncnn, the core): mutations there are guided by the
Python paths and the seed graphs only; build the core with FASTFACE_SANITIZE and LD_PRELOAD the
sanitizer runtime to catch memory errors the inputs reach.
"""
import argparse
import hashlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fastface", "targets"]):
    import targets

# Model inputs carry a .param and weights; the rest are small text or binary files.
MAX_LEN = {"model": 1 << 20, "detector": 1 << 20}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("build/fuzz"))
    parser.add_argument("--shared", type=Path, default=None, help="shared models folder, for seed graphs")
    args, libfuzzer_args = parser.parse_known_args()
    corpus = args.work / "corpus" / args.target
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in targets.seeds(args.shared)[args.target]:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    target = targets.TARGETS[args.target]
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={args.seconds}", "-timeout=20", "-rss_limit_mb=2048",
                   f"-max_len={MAX_LEN.get(args.target, 1 << 16)}", "-print_final_stats=1",
                   f"-artifact_prefix={args.work}/crash-{args.target}-", *libfuzzer_args],
                  lambda data: target(data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
