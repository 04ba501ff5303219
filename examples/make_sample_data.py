#!/usr/bin/env python3
"""Generate makam's synthetic Turkish lyrics sample dataset.

Every phrase below was written for makam; nothing is taken from real songs.
Texts are composed of 1-3 lines drawn from hand-written per-genre phrase lists,
so each genre has its own recurring vocabulary (a tiny model learns it in a few
epochs) while no two texts are identical.

Output (deterministic, fixed seed, stdlib only):
  examples/data/lyrics-sample.jsonl  one {"text", "label"} object per line
  examples/data/lyrics-sample.csv    same rows, header text,label, RFC 4180 quoting

Usage: python3 examples/make_sample_data.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

SEED = 20240521

# Rows per label: slightly imbalanced, like real lyrics data.
COUNTS = {"arabesk": 90, "pop": 60, "rock": 50, "türkü": 40}

# Share of texts with 1, 2 and 3 lines.
LINE_WEIGHTS = {1: 3, 2: 5, 3: 2}

PHRASES: dict[str, list[str]] = {
    "arabesk": [
        "Kader yazmış bu çileyi alnıma",
        "Gurbet elde yıkık bir kalp taşırım",
        "Derdim büyük, ağlamak da fayda etmez",
        "Felek vurdu, dert ortağım kalmadı",
        "Ağla gönlüm, ağla; bu gece de yalnızım",
        "Yıkık duvarlar gibi yüreğim",
        "Gurbet akşamında gözyaşım sel olur",
        "Zalim kader, neden bana bu çile?",
        "\"Unut\" dedin, unutamadım kaderimi",
        "Dertlerimi kadehe döktüm, ağladım",
        "Hasretin yıkık bir ev gibi içimde",
        "Kaderime küstüm, gurbete düştüm",
        "Ağlamak bile yetmiyor bu derde",
        "Felek, sen de mi acımadın bana?",
        "Yıkık gönlüm gurbet yolunda kaldı",
        "Bir dert bitti, bin dert başladı; kader bu",
        "Gözyaşım kurumaz, çilem bitmez",
        "Kader mahkûmuyum, gurbet benim evim",
        "Ağlarım, ağlarım, derdime derman yok",
        "Zalim felek, yıkık bıraktın beni",
        "Gurbette bir garibim, kimsem yok",
        "Her gece ağlamak, her gece dert",
        "İçimde yıkık bir saray, adı kader",
        "Dert çekmekten usandım, \"yeter\" diyemedim",
    ],
    "rock": [
        "Gitarın teli koptu, isyan sürüyor",
        "Sokak lambaları söner, gece uyanır",
        "Elektrik çarpar gibi bir çığlık",
        "Amfiyi sonuna kadar aç, duvarlar titresin",
        "İsyanım asfalt kadar sert",
        "Gece yarısı sokaklarda davul sesi",
        "Distorsiyon, duman, ter ve isyan",
        "Bu şehrin sokakları bize dar gelir",
        "\"Sus\" dediler, gitarı daha da bağırttık",
        "Elektrikli bir gece, yanık bir sahne",
        "Bas gitar göğsümde gümbürdüyor",
        "Karanlık sokakta yürürüm, korkmadan",
        "Gecenin içinden bir riff yükselir",
        "İsyan bayrağı sahnede dalgalanır",
        "Kablolar kıvılcım saçar, elektrik kesilmez",
        "Davulcu çıldırdı, gece daha bitmedi",
        "Sokak köpekleri gibi özgürüz, gitar sırtımda",
        "Beton duvarlara isyanımı yazarım",
        "Gece çöker, amfiler uğuldar",
        "Ses duvarını yık, sokağa çık",
        "Paslı bir gitar, kırık bir tel, sönmeyen isyan",
        "Şimşek gibi elektrik, gök gürültüsü gibi davul",
    ],
    "pop": [
        "Dans et benimle, bu yaz bizim",
        "Kalbim küt küt, gülüşün yeter",
        "Aşk bir şarkı, nakaratı sensin",
        "Yaz güneşi tenimde, dans pistinde",
        "Gülüşün şeker, kalbim çikolata",
        "Bir öpücük yolla, kalbim hazır",
        "Sahilde dans, denizde aşk",
        "\"Seni seviyorum\" de, kalbim uçsun",
        "Yaz aşkı bu, hiç bitmesin",
        "Pistte ışıklar, kalbimde sen",
        "Gülüşünle açar bütün çiçekler",
        "Aşkın ritmi var, dans et, dans et",
        "Bu yaz kalbimi sana verdim",
        "Gülüş gülüş, mutluluk her yerde",
        "Tatil, güneş, deniz ve aşk",
        "Kalp kalbe karşı, dansa başla",
        "Yaz gecesi, disko topu, aşk şarkısı",
        "Gülümse bana, yaz bitmeden",
        "Aşk dolu mesajlar, kalpli emojiler",
        "Dans edelim sabaha kadar, aşkım",
        "İki kalp, bir dans, sonsuz bir yaz",
    ],
    "türkü": [
        "Dağlar dağlar, yarim kaldı ardında",
        "Yaylaya göçtük, sazım omzumda",
        "Bozkırın ortasında bir çoban türkü söyler",
        "Sazım sazım, tellerin dile gelsin",
        "Anam, anam, beni yaylaya gönder",
        "Turnalar geçer, haber getirmez yardan",
        "Pınar başında bir ela göz gördüm",
        "Dağların karı erir, yayla yeşillenir",
        "Bozkır rüzgârı esti, sazım inledi",
        "\"Gel\" dedi yar, dağları aşıp geldim",
        "Ana, yayla yolları çiçek açmış",
        "Kara dağlar, karlı dağlar, yar dağlar",
        "Sazımın perdesinde bozkırın sesi var",
        "Yayla çiçekleri, ananın duası",
        "Koyunlar meler, çoban kaval çalar",
        "Dağlar yüce, yar uzak, sazım yanımda",
        "Bozkırda bir köy, köyde bir ana",
        "Mor sümbül yaylada, yar gelir mi baharda",
        "Pınarın suyu soğuk, ananın eli sıcak",
        "Turnam, dağları aş, anama selam söyle",
        "İndim yayladan ovaya, sazım elimde",
    ],
}


def compose(rng: random.Random, phrases: list[str]) -> str:
    n = rng.choices(list(LINE_WEIGHTS), weights=list(LINE_WEIGHTS.values()))[0]
    return "\n".join(rng.sample(phrases, n))


def generate(seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    for label, count in COUNTS.items():
        made = 0
        attempts = 0
        while made < count:
            attempts += 1
            if attempts > count * 100:
                raise RuntimeError(f"cannot make {count} distinct texts for {label}")
            text = compose(rng, PHRASES[label])
            if text in seen:
                continue
            seen.add(text)
            rows.append({"text": text, "label": label})
            made += 1
    rng.shuffle(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "data")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    rows = generate()
    jsonl = args.out_dir / "lyrics-sample.jsonl"
    with jsonl.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    csv_path = args.out_dir / "lyrics-sample.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])  # RFC 4180: CRLF, minimal quoting
        writer.writeheader()
        writer.writerows(rows)

    counts: dict[str, int] = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    print(f"wrote {len(rows)} rows to {jsonl} and {csv_path}: {counts}")


if __name__ == "__main__":
    main()
