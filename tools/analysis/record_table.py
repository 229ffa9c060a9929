"""The table of an evaluation still under way, from its per-image record (`images.jsonl` in `sana-sr eval --out`).

`sana-sr eval` writes quality.csv when every image is scored; a long evaluation stopped part way (to be
continued with `--resume`) has only its record. This prints, per set, the mean scores over the images that
every method has scored so far, so that the methods are compared on the same photos. A photo two sets share
is recorded once, under the set that scored it first.

    python3 tools/analysis/record_table.py out/eval/real-sets/images.jsonl
"""

import collections
import json
import sys


def main(path: str) -> None:
    records = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    methods = list(dict.fromkeys(r["method"] for r in records))
    scores = collections.defaultdict(dict)
    for r in records:
        scores[(r["set"], r["image"])][r["method"]] = r
    print("| set | method | PSNR-Y | SSIM-Y | NIQE | sec/img | images |")
    print("|---|---|---|---|---|---|---|")
    for set_name in dict.fromkeys(r["set"] for r in records):
        done = [k for k in scores if k[0] == set_name and all(m in scores[k] for m in methods)]
        for method in methods if done else []:
            rows = [scores[k][method] for k in done]

            def mean(field: str, digits: int) -> str:
                values = [r[field] for r in rows if r[field] is not None]
                return f"{sum(values) / len(values):.{digits}f}" if len(values) == len(rows) else ""

            cells = [mean("psnr_y", 3), mean("ssim_y", 4), mean("niqe", 3), mean("seconds", 2)]
            print(f"| {set_name} | {method} | {' | '.join(cells)} | {len(done)} |")


if __name__ == "__main__":
    main(sys.argv[1])
