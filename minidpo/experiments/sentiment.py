"""Controlled sentiment generation, the DPO paper's first experiment (section 6.1), at small scale.

    x = the first few words of a real movie review;  y = a continuation;  r*(x, y) = sentiment of x + y

The ground-truth reward r* is something we can compute, so every method (DPO, PPO, best-of-N, ...) can be
scored on what it was *meant* to optimise, alongside how far it moved from the reference (the KL).

- Offline text: 10,605 movie-review snippets (Rotten Tomatoes, Pang & Lee 2005) with human sentiment
  ratings, shipped inside the source distribution of the `vaderSentiment` package on PyPI (MIT licence,
  Hutto & Gilbert, ICWSM 2014). We read it from `$MINIDPO_DATA_DIR`, the cache, or download that sdist
  from the package registry once and check its sha256.
- Offline reward: VADER's compound score in [-1, 1] (rule-based, `vaderSentiment`).
- `gpu` profile: IMDb reviews from the hub (`stanfordnlp/imdb`) and the paper's classifier
  `siebert/sentiment-roberta-large-english`, reward = P(positive) in [0, 1].
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import urllib.request
from pathlib import Path
from typing import Callable

import torch
from datasets import Dataset

from ..utils import data_file
from ..validation import PreferenceDataError

SNIPPETS_FILE = "movieReviewSnippets_GroundTruth.txt"
VADER_SDIST_URL = (
    "https://files.pythonhosted.org/packages/77/8c/4a48c10a50f750ae565e341e697d74a38075a3e43ff0df6f1ab72e186902/"
    "vaderSentiment-3.3.2.tar.gz"
)
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SIEBERT = "siebert/sentiment-roberta-large-english"


def _extract_snippets(sdist: bytes) -> bytes:
    """The snippet file from the sdist: vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz."""
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner_bytes = outer.extractfile(inner_member).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        member = next(m for m in inner.getmembers() if m.name.endswith(SNIPPETS_FILE))
        return inner.extractfile(member).read()


def _download_sdist() -> bytes:
    """The vaderSentiment 3.3.2 sdist: straight from PyPI's file host, else through pip (which honours a
    configured index or proxy)."""
    try:
        with urllib.request.urlopen(VADER_SDIST_URL, timeout=60) as response:
            return response.read()
    except OSError as e:
        first = e
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               "vaderSentiment==3.3.2", "-d", tmp]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            found = list(Path(tmp).glob("vaderSentiment-3.3.2.tar.gz"))
            if found:
                return found[0].read_bytes()
    raise ConnectionError(
        f"could not download the review snippets ({VADER_SDIST_URL}: {first}; `pip download` failed too). Offline, put "
        f"{SNIPPETS_FILE} (from `pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`, inside "
        f"additional_resources/hutto_ICWSM_2014.tar.gz) into $MINIDPO_DATA_DIR."
    )


def _fetch_snippets(path: Path) -> None:
    """The snippet file, extracted from the vaderSentiment 3.3.2 sdist (2.5 MB, sha256-checked)."""
    sdist = _download_sdist()
    digest = hashlib.sha256(sdist).hexdigest()
    if digest != VADER_SDIST_SHA256:
        raise ValueError(f"{VADER_SDIST_URL} has sha256 {digest}, expected {VADER_SDIST_SHA256}; not using it")
    path.write_bytes(_extract_snippets(sdist))


def review_snippets_path() -> Path:
    """The snippet file by `minidpo.utils.data_file`'s rule: `$MINIDPO_DATA_DIR`, else the cache, else extracted
    once from the vaderSentiment 3.3.2 sdist downloaded from PyPI."""
    return data_file(SNIPPETS_FILE, _fetch_snippets, "the vaderSentiment 3.3.2 sdist on PyPI")


def parse_snippets(text: str, source: str = SNIPPETS_FILE) -> list[str]:
    """The snippet texts of a `id <tab> rating <tab> text` file; a malformed line raises naming it."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise PreferenceDataError(f"{source}, line {number}: expected 3 tab-separated fields (id, rating, text), "
                                      f"got {len(fields)}")
        try:
            float(fields[1])
        except ValueError:
            raise PreferenceDataError(f"{source}, line {number}, field 'rating': not a number: {fields[1]!r}") from None
        if not fields[2].strip():
            raise PreferenceDataError(f"{source}, line {number}, field 'text': empty")
        out.append(" ".join(fields[2].replace("''", '"').split()))
    return out


def split_prefix(text: str, n_words: int) -> tuple[str, str]:
    """(the first `n_words` words, the rest with its leading space): the rest continues the prefix verbatim."""
    words = text.split(" ")
    return " ".join(words[:n_words]), " " + " ".join(words[n_words:])


def load_review_prompts(
    source: str = "snippets", min_words: int = 10, prefix_words: tuple[int, int] = (2, 8), seed: int = 0,
    max_texts: int | None = None,
) -> Dataset:
    """Review prefixes and their true continuations, shuffled with `seed`: columns `record_id`, `prompt`,
    `continuation`. Each prefix has between prefix_words[0] and prefix_words[1] words (drawn per review, as
    the paper's 2-8 token IMDb prefixes), and only reviews of at least `min_words` words are used.

    source "snippets": the offline movie-review snippets; "imdb": IMDb train reviews from the hub
    (`stanfordnlp/imdb`, first sentence-ish 64 words, HTML line breaks removed).
    """
    if source == "snippets":
        texts = parse_snippets(review_snippets_path().read_text(encoding="utf-8"))
    elif source == "imdb":
        from datasets import load_dataset

        reviews = load_dataset("stanfordnlp/imdb", split="train")["text"]
        texts = [" ".join(re.sub(r"<br\s*/?>", " ", t).split()[:64]) for t in reviews]
    else:
        raise ValueError(f"source must be 'snippets' or 'imdb', got {source!r}")
    lo, hi = prefix_words
    if not 1 <= lo <= hi < min_words:
        raise ValueError(f"need 1 <= prefix_words[0] <= prefix_words[1] < min_words, got {prefix_words}, {min_words}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(texts), generator=g).tolist()
    rows: dict[str, list] = {"record_id": [], "prompt": [], "continuation": []}
    seen = set()
    for i in order:
        if len(texts[i].split(" ")) < min_words or texts[i] in seen:
            continue
        seen.add(texts[i])
        n = int(torch.randint(lo, hi + 1, (1,), generator=g))
        prompt, rest = split_prefix(texts[i], n)
        rows["record_id"].append(i)
        rows["prompt"].append(prompt)
        rows["continuation"].append(rest)
        if max_texts is not None and len(rows["prompt"]) == max_texts:
            break
    return Dataset.from_dict(rows)


# ----------------------------------------------------------------------------- ground-truth rewards


def vader_reward() -> Callable[[list[str]], torch.Tensor]:
    """r*(text) = VADER's compound sentiment score in [-1, 1] (rule-based, offline)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def reward(texts: list[str]) -> torch.Tensor:
        return torch.tensor([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=torch.float32)

    return reward


def classifier_reward(name: str = SIEBERT, device: str = "cpu",
                      batch_size: int = 32) -> Callable[[list[str]], torch.Tensor]:
    """r*(text) = P(positive) under a sentiment classifier (the paper's siebert/sentiment-roberta-large-english)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForSequenceClassification.from_pretrained(name).to(device).eval()
    positive = {v.lower(): k for k, v in model.config.id2label.items()}.get("positive", 1)

    @torch.inference_mode()
    def reward(texts: list[str]) -> torch.Tensor:
        out = []
        for s in range(0, len(texts), batch_size):
            enc = tokenizer(texts[s : s + batch_size], padding=True, truncation=True, max_length=512,
                            return_tensors="pt")
            logits = model(**enc.to(device)).logits.float()
            out.append(logits.softmax(-1)[:, positive].cpu())
        return torch.cat(out)

    return reward


def ground_truth_reward(name: str, device: str = "cpu") -> Callable[[list[str]], torch.Tensor]:
    """"vader" (offline) or a hub sentiment classifier's name, run on `device` (the profile's device)."""
    return vader_reward() if name == "vader" else classifier_reward(name, device=device)


def join(prompt: str, completion: str) -> str:
    """The text the ground-truth reward reads: the prefix and its continuation."""
    return (prompt + " " + completion).strip()
