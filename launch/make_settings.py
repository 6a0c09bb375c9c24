"""Build the data directories of the comparison's settings (RESULTS.md) from the demo corpus.

    .venv/bin/python launch/make_settings.py OUT [--small-domain legal] [--small-bytes 60000]

Writes, under OUT:
* `raw/demo/<domain>/demo.jsonl`: the five demo domains, plus `pkgdocs` (the METADATA files of
  the installed packages: package descriptions mixing prose, code snippets and field headers).
  `pkgdocs` is the *target* domain: runs keep it out of training with
  `eval_only_domains=[pkgdocs]` and score `val/target` on it.
* `demo/`: the prepared data_dir of setting (a) demo + (c) separate target (same runs).
* `raw/small/` and `small/`: setting (b), data-constrained: the same corpus with
  `--small-domain` cut to its first documents totalling `--small-bytes` bytes, tokenised with
  the tokenizer of `demo/` (same vocabulary, so losses are comparable across settings).
* `demo-train/`, `small-train/`: the training domains only (symlinks + a manifest without
  pkgdocs), for tools that read every domain of a data_dir as a training domain
  (`python -m mixtrain.fitting.proxy --data-dir`, the proxy mixtures of compare.sh).

Place in the flow: demo_corpus.py -> **make_settings.py** -> prepare_corpus -> compare.sh.
Idempotent: prepare_corpus skips domains whose raw text and tokenizer did not change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mixtrain.prepare.corpus import write_if_changed
from mixtrain.prepare.demo_corpus import build_demo_corpus, package_dirs
from mixtrain.prepare.pipeline import prepare_corpus
from mixtrain.prepare.shards import ShardSettings

TARGET_DOMAIN = "pkgdocs"


def package_metadata_docs(max_bytes: int) -> list[str]:
    """The installed packages' METADATA files (sorted by path), up to max_bytes in all."""
    docs, total = [], 0
    for d in package_dirs():
        for p in sorted(d.glob("*.dist-info/METADATA")):
            text = p.read_text(encoding="utf-8", errors="replace")
            if total + len(text.encode()) > max_bytes:
                return docs
            docs.append(text)
            total += len(text.encode())
    return docs


def write_docs(path: Path, docs: list[str]) -> None:
    write_if_changed(path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs))


def first_docs(path: Path, max_bytes: int) -> list[str]:
    """The first documents of a demo.jsonl file totalling at most max_bytes (at least one)."""
    docs, total = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        if docs and total + len(text.encode()) > max_bytes:
            break
        docs.append(text)
        total += len(text.encode())
    return docs


def training_view(data_dir: Path, view: Path, eval_only: list[str]) -> None:
    """view/ = data_dir's training domains (symlinked) and a manifest listing only them."""
    manifest = json.loads((data_dir / "manifest.json").read_text())
    manifest["domains"] = [d for d in manifest["domains"] if d not in eval_only]
    view.mkdir(parents=True, exist_ok=True)
    for name in manifest["domains"] + [manifest["tokenizer"]]:
        link = view / name
        if not link.exists():
            link.symlink_to((data_dir / name).resolve())
    (view / "manifest.json").write_text(json.dumps(manifest, indent=2))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder for raw/ and the prepared data_dirs demo/ and small/")
    ap.add_argument("--small-domain", default="legal", help="domain made small in setting (b)")
    ap.add_argument("--small-bytes", type=int, default=60_000, help="raw bytes kept of that domain")
    ap.add_argument("--target-bytes", type=int, default=1_000_000, help="raw bytes of the pkgdocs target domain")
    args = ap.parse_args(argv)
    out = Path(args.out)
    settings = ShardSettings()

    raw = out / "raw" / "demo"
    build_demo_corpus(raw, progress=False)
    docs = package_metadata_docs(args.target_bytes)
    if not docs:
        sys.exit("make_settings: no *.dist-info/METADATA files found in this installation for the target domain")
    write_docs(raw / TARGET_DOMAIN / "demo.jsonl", docs)
    prepare_corpus(raw, out / "demo", settings=settings)

    small = out / "raw" / "small"
    for domain_dir in sorted(p for p in raw.iterdir() if p.is_dir()):
        src = domain_dir / "demo.jsonl"
        keep = first_docs(src, args.small_bytes) if domain_dir.name == args.small_domain else None
        write_docs(small / domain_dir.name / "demo.jsonl",
                   keep if keep is not None else [json.loads(line)["text"] for line in src.read_text().splitlines()])
    if not (small / args.small_domain).is_dir():
        sys.exit(f"make_settings: --small-domain {args.small_domain!r} is not a demo domain "
                 f"({sorted(p.name for p in raw.iterdir())})")
    prepare_corpus(small, out / "small", settings=settings, tokenizer_model=str(out / "demo" / "tokenizer.model"))
    for name in ("demo", "small"):
        training_view(out / name, out / f"{name}-train", [TARGET_DOMAIN])
    print(f"make_settings: {out / 'demo'} (target domain {TARGET_DOMAIN}), {out / 'small'} "
          f"({args.small_domain} cut to {args.small_bytes:,} raw bytes)")


if __name__ == "__main__":
    main()
