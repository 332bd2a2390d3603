"""FAD between two folders of music under each embedding's reference frontend and under the soxr option, and the
parity of each embedding with its reference code (same loaded weights).

    python benchmarks/bench_frontends.py --a DIR_A --b DIR_B                 # random VGGish/PANNs, tiny CLAP
    python benchmarks/bench_frontends.py --a DIR_A --b DIR_B --vggish-weights vggish-10086976.pth \\
        --panns-checkpoint Cnn14_mAP=0.431.pth --clap-model laion/clap-htsat-unfused

"reference" is the default of each embedding (resampy kaiser_best; PANNs one row per file); "soxr" is the named
option (soxr HQ; PANNs in 10 s windows), i.e. the frontend before the reference one became the default. Parity
runs :meth:`Embedder.reference_rows` (torchvggish, frechet_audio_distance's PANNs path, transformers' CLAP).
Without real weights the embeddings are random networks: the differences show what the frontend changes, not
how large they are for the trained models.
"""

from __future__ import annotations

import argparse
import tempfile

from echoscript_utils import embeddings
from echoscript_utils.audio import load
from echoscript_utils.evaluation import audio_files
from echoscript_utils.fad import frechet_distance


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="folder of audio (set A)")
    ap.add_argument("--b", required=True, help="folder of audio (set B)")
    ap.add_argument("--vggish-weights", default="random")
    ap.add_argument("--panns-checkpoint", default="random")
    ap.add_argument("--clap-model", default="tiny-clap")
    ap.add_argument("--cache", default=None, help="model cache folder (default: a temporary one)")
    args = ap.parse_args(argv)

    cache = args.cache or tempfile.mkdtemp(prefix="bench_frontends_")
    files_a, files_b = audio_files(args.a), audio_files(args.b)
    clips_a, clips_b = [load(f) for f in files_a], [load(f) for f in files_b]
    specs = {"vggish": {"weights": args.vggish_weights}, "panns": {"checkpoint": args.panns_checkpoint},
             "clap": {"model": args.clap_model}}
    options = {"reference": {}, "soxr": {"resampler": "soxr"}}
    print(f"A: {len(files_a)} files, B: {len(files_b)} files")
    print(f"{'embedding':<10} {'FAD reference':>14} {'FAD soxr':>14} {'rel. diff':>10} {'parity rows':>12} "
          f"{'parity FAD':>11}")
    for name, kw in specs.items():
        fads = {}
        parity = {}
        for label, extra in options.items():
            opts = {**kw, **extra, "cache_dir": cache}
            if name == "panns" and label == "soxr":
                opts["window_s"] = 10.0
            emb = embeddings.get_embedder(name, opts)
            rows_a = [emb.embed(w, sr) for w, sr in clips_a]
            rows_b = [emb.embed(w, sr) for w, sr in clips_b]
            fads[label] = frechet_distance(rows_a, rows_b)
            if label == "reference":
                parity = embeddings.measure_parity(emb, clips_a, clips_b)
            del emb
        rel = abs(fads["soxr"] - fads["reference"]) / fads["reference"]
        rows = "n/a" if parity.get("rows_max_rel") is None else f"{parity['rows_max_rel']:.1e}"
        fad_rel = "n/a" if parity.get("fad_rel") is None else f"{parity['fad_rel']:.1e}"
        print(f"{name:<10} {fads['reference']:>14.8g} {fads['soxr']:>14.8g} {rel:>10.1e} {rows:>12} {fad_rel:>11}"
              + (f"  ({parity['note']})" if parity.get("note") else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
