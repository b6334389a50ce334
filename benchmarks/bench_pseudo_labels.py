"""The archive as unlabeled data: does ``landscape retrain --pseudo-labels`` help?

For each seed, on real photos (../shared/datasets/intel-sample, 6 classes × 150):

- **base**: a logistic-regression head on packaged EfficientNet-Lite0 (frozen) trained on
  ``--base-per-class`` photos per class;
- **archive**: ``--archive-per-class`` other photos per class, indexed with the base model into a
  fresh SQLite index;
- **reviews**: ``--reviewed-per-class`` archive files per class reviewed with their true label (the
  folder name): a correction where the base was wrong, a confirmation otherwise;
- **retrains**, each on its own copy of that index with the same seed (so the same held-out
  reviewed files), all with the retrain defaults otherwise:
  (a) corrections alone, (b) + pseudo-labels at confidence ≥ 0.9, (c) + pseudo-labels ≥ 0.7 —
  all without the base's own training data — and (d) the default (with the base's training
  data, no pseudo-labels) for reference.

The verdict is on the held-out reviewed files (what ``landscape retrain`` reports). As a second,
larger test the photos in neither the base's training data nor the archive ("fresh", 150 −
base − archive per class) are scored too.

    python benchmarks/bench_pseudo_labels.py [--seeds 0,1,2] [--variants a,b,c,d]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

INTEL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "intel-sample"

# name → (description, RetrainOptions overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": ("corrections alone", {"use_base_data": False}),
    "b": (
        "+ pseudo-labels ≥ 0.9",
        {"use_base_data": False, "pseudo_labels": True, "min_confidence": 0.9},
    ),
    "c": (
        "+ pseudo-labels ≥ 0.7",
        {"use_base_data": False, "pseudo_labels": True, "min_confidence": 0.7},
    ),
    "d": ("default (base data)", {}),
}


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _split(seed: int, base_n: int, archive_n: int) -> dict[str, dict[str, list[Path]]]:
    """Per class: the base's training photos, the archive's, and the rest ("fresh")."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[Path]]] = {"base": {}, "archive": {}, "fresh": {}}
    for cls in sorted(p.name for p in INTEL.iterdir() if p.is_dir()):
        files = sorted((INTEL / cls).glob("*.jpg"))
        if len(files) < base_n + archive_n:
            raise SystemExit(f"{cls} has {len(files)} photos, fewer than base + archive")
        order = [files[i] for i in rng.permutation(len(files))]
        out["base"][cls] = order[:base_n]
        out["archive"][cls] = order[base_n : base_n + archive_n]
        out["fresh"][cls] = order[base_n + archive_n :]
    return out


def _copy_tree(files: dict[str, list[Path]], folder: Path) -> None:
    for cls, paths in files.items():
        (folder / cls).mkdir(parents=True)
        for path in paths:
            shutil.copy(path, folder / cls / path.name)


def _fit_base(data: Path, out: Path) -> Path:
    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    cfg = load_train_config(
        None,
        {
            "data": str(data),
            "out": str(out),
            "backbone": "efficientnet_lite0",
            "weights": "packaged",
            "policy": "frozen",
            "head": {"kind": "logreg", "C": 1.0},
            "progress": False,
            "num_workers": 0,
        },
    )
    return fit(cfg).bundle


def _review(url: str, reviewed_per_class: int, seed: int) -> dict[str, Any]:
    """Review ``reviewed_per_class`` archive files per class with their folder's label; the
    base's accuracy on the archive and the pseudo-label pools' size and precision."""
    from sqlalchemy import select

    from landscape.index.accounts import Identity, add_user
    from landscape.index.db import open_index, session_factory
    from landscape.index.reviews import add_correction
    from landscape.index.schema import File, Prediction

    engine = open_index(url)
    rng = np.random.default_rng(seed + 1000)
    with session_factory(engine)() as session:
        rows = session.execute(
            select(File.id, File.relative_path, Prediction.label, Prediction.confidence)
            .join(Prediction, Prediction.file_id == File.id)
            .where(Prediction.segment == 0)
            .order_by(File.id)
        ).all()
        by_class: dict[str, list[tuple[int, str, float]]] = {}
        for file_id, rel, label, confidence in rows:
            by_class.setdefault(rel.split("/")[0], []).append((file_id, label, confidence))
        user = add_user(session, "bench", "analyst", None)
        session.flush()
        who = Identity(user_id=user.id, name="bench", role="analyst", scope="write")
        reviewed: set[int] = set()
        corrections = 0
        for truth in sorted(by_class):
            items = by_class[truth]
            for i in sorted(rng.permutation(len(items))[:reviewed_per_class].tolist()):
                file_id, label, _ = items[i]
                add_correction(session, who, file_id, truth)
                reviewed.add(file_id)
                corrections += label != truth
        session.commit()
    engine.dispose()
    flat = [(fid, t, lab, conf) for t, items in by_class.items() for fid, lab, conf in items]
    pools = {}
    for floor in (0.9, 0.7):
        pool = [(t, lab) for fid, t, lab, conf in flat if fid not in reviewed and conf >= floor]
        right = sum(t == lab for t, lab in pool)
        pools[floor] = (len(pool), right / len(pool) if pool else float("nan"))
    return {
        "files": len(flat),
        "archive_accuracy": sum(t == lab for _, t, lab, _ in flat) / len(flat),
        "reviewed": len(reviewed),
        "corrections": corrections,
        "pools": pools,
    }


def _copy_db(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def _fresh_accuracy(bundle: Path, fresh: dict[str, list[Path]], classes: list[str]) -> float:
    from landscape.lifecycle.compare import score_bundle

    paths = [p for cls in classes for p in fresh.get(cls, [])]
    truth = np.array([classes.index(cls) for cls in classes for _ in fresh.get(cls, [])])
    probs = score_bundle(bundle, paths, classes)
    return float((probs.argmax(axis=1) == truth).mean())


def _one_seed(args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    from landscape.index.db import open_index
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.inference.predictor import Predictor
    from landscape.lifecycle import RetrainOptions, retrain

    work.mkdir(parents=True)
    files = _split(seed, args.base_per_class, args.archive_per_class)
    _copy_tree(files["base"], work / "base-data")
    _copy_tree(files["archive"], work / "archive")
    t = time.perf_counter()
    bundle = _fit_base(work / "base-data", work / "base")
    _say(f"seed {seed}: base head fitted in {time.perf_counter() - t:.1f} s")

    db = work / "index.db"
    url = f"sqlite:///{db}"
    engine = open_index(url)
    t = time.perf_counter()
    run_index(
        engine,
        [work / "archive"],
        predictor=Predictor.from_bundle(bundle),
        options=IndexOptions(workers=1, memory_mb=None),
    )
    engine.dispose()
    _say(f"seed {seed}: archive indexed in {time.perf_counter() - t:.1f} s")
    info = _review(url, args.reviewed_per_class, seed)
    pools = ", ".join(
        f"≥{floor}: {n} files, {prec:.1%} right" for floor, (n, prec) in info["pools"].items()
    )
    _say(
        f"seed {seed}: base right on {info['archive_accuracy']:.1%} of the archive; "
        f"{info['reviewed']} reviewed ({info['corrections']} corrections); "
        f"unreviewed pseudo-label pools {pools}"
    )

    result: dict[str, Any] = {"seed": seed, **info, "variants": {}}
    for name in args.variants:
        copy = work / f"index-{name}.db"
        _copy_db(db, copy)
        engine = open_index(f"sqlite:///{copy}")
        options = RetrainOptions(
            out=work / f"retrain-{name}",
            seed=seed,
            num_workers=0,
            progress=False,
            **VARIANTS[name][1],
        )
        t = time.perf_counter()
        r = retrain(engine, options)
        wall = time.perf_counter() - t
        engine.dispose()
        c = r.comparison
        row = {
            "base_acc": c["base"]["accuracy"],
            "base_f1": c["base"]["macro_f1"],
            "acc": c["candidate"]["accuracy"],
            "f1": c["candidate"]["macro_f1"],
            "held_out": c["held_out"],
            "pseudo": r.counts.get("pseudo_labels", 0),
            "extra": r.counts.get("extra_data", 0),
            "train": r.counts["train"],
            "wall": wall,
        }
        if args.fresh:
            row["fresh"] = _fresh_accuracy(r.bundle, files["fresh"], c["classes"])
            if "base_fresh" not in result:
                result["base_fresh"] = _fresh_accuracy(bundle, files["fresh"], c["classes"])
        result["variants"][name] = row
        fresh = f", fresh {row['fresh']:.3f}" if args.fresh else ""
        _say(
            f"seed {seed} ({name}) {VARIANTS[name][0]}: held-out {row['held_out']}, base "
            f"{row['base_acc']:.3f} → candidate {row['acc']:.3f} (macro-F1 {row['f1']:.3f}), "
            f"train {row['train']} (pseudo {row['pseudo']}, base data {row['extra']}){fresh}, "
            f"{wall:.1f} s"
        )
    return result


def _ms(values: list[float], fmt: str = ".3f", signed: bool = False) -> str:
    f = ("+" if signed else "") + fmt
    if len(values) < 2:
        return format(values[0], f)
    spread = ".1f" if fmt == "d" else fmt
    mean = statistics.mean(values)
    return (
        f"{format(mean, spread if fmt == 'd' else f)} ± {format(statistics.stdev(values), spread)}"
    )


def _report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    seeds = [r["seed"] for r in results]
    cols = [str(s) for s in seeds] + ["mean ± std"]

    def line(label: str, values: list[float], fmt: str = ".3f", signed: bool = False) -> str:
        f = ("+" if signed else "") + fmt
        cells = [format(v, f) for v in values] + [_ms(values, fmt, signed)]
        return f"| {label} | " + " | ".join(cells) + " |"

    print()
    print("| seed | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    print(
        line(
            "held-out reviewed files",
            [r["variants"][args.variants[0]]["held_out"] for r in results],
            "d",
        )
    )
    print(
        line(
            "base: held-out accuracy",
            [r["variants"][args.variants[0]]["base_acc"] for r in results],
        )
    )
    print(
        line(
            "base: held-out macro-F1", [r["variants"][args.variants[0]]["base_f1"] for r in results]
        )
    )
    for name in args.variants:
        desc = VARIANTS[name][0]
        rows = [r["variants"][name] for r in results]
        print(line(f"({name}) {desc}: accuracy", [v["acc"] for v in rows]))
        print(line(f"({name}) {desc}: macro-F1", [v["f1"] for v in rows]))
        if VARIANTS[name][1].get("pseudo_labels"):
            print(line(f"({name}) pseudo-labelled images used", [v["pseudo"] for v in rows], "d"))
    if "a" in args.variants:
        for name in args.variants:
            if name == "a":
                continue
            for key, what in (("acc", "accuracy"), ("f1", "macro-F1")):
                diff = [r["variants"][name][key] - r["variants"]["a"][key] for r in results]
                print(line(f"**{name} − a** {what}", diff, ".3f", signed=True))
    for floor in (0.9, 0.7):
        print(
            line(f"pseudo-label pool ≥ {floor}: precision", [r["pools"][floor][1] for r in results])
        )
    if args.fresh:
        print(line("fresh photos: base accuracy", [r["base_fresh"] for r in results]))
        for name in args.variants:
            print(
                line(
                    f"fresh photos: ({name}) accuracy",
                    [r["variants"][name]["fresh"] for r in results],
                )
            )
        if "a" in args.variants:
            for name in args.variants:
                if name != "a":
                    diff = [
                        r["variants"][name]["fresh"] - r["variants"]["a"]["fresh"] for r in results
                    ]
                    print(line(f"fresh photos: **{name} − a**", diff, ".3f", signed=True))
    for name in args.variants:
        print(
            line(
                f"({name}) retrain wall time (s)",
                [r["variants"][name]["wall"] for r in results],
                ".1f",
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--base-per-class", type=int, default=20)
    parser.add_argument("--archive-per-class", type=int, default=100)
    parser.add_argument("--reviewed-per-class", type=int, default=12)
    parser.add_argument("--variants", default="a,b,c,d", help="subset of a,b,c,d")
    parser.add_argument(
        "--no-fresh", dest="fresh", action="store_false", help="skip scoring the fresh photos"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; use a subset of a,b,c,d")
    if args.base_per_class + args.archive_per_class >= 150:
        args.fresh = False

    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-pseudo-")
        root = Path(tmp.name)
    else:
        root = args.keep
    results = []
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(_one_seed(args, seed, root / f"seed{seed}"))
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _report(args, results)


if __name__ == "__main__":
    main()
