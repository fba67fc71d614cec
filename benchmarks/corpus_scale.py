"""A corpus of a million documents: one epoch of the discrete-code topic model, its held-out
bound and its NPMI coherence, with the peak memory of each stage.

Draw a synthetic discrete-code corpus (``redge_core.corpus.synthetic_code_corpus``, one chunk of
documents at a time; 4 codes of 8 values, 60 words per document) and save its compressed rows;
then for each host installed, in a process of its own (so that each peak is its own): load it,
keep the last 1 % as the held-out set, fit one epoch of ``DiscreteCodeTopicModel``
(ReinMax, batches of 1 000 documents), evaluate the held-out bound per token (in chunks of
documents) and the NPMI coherence of its topics on the training corpus (from the sparse presence
matrix, the topics' own words only). Prints the seconds and the peak resident memory after each
stage; the corpus's own size (its compressed rows) is printed for comparison. Nothing here is
dense in the number of documents.

    python benchmarks/corpus_scale.py [--quick] [--hosts pyro numpyro] [--documents N] [--vocabulary V]
"""

import argparse
import importlib
import importlib.util
import pathlib
import resource
import subprocess
import sys
import tempfile
import time


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def generate(path, documents, vocabulary):
    import numpy as np

    from redge_core import corpus as redge_corpus

    start = time.perf_counter()
    corpus, _ = redge_corpus.synthetic_code_corpus(
        num_documents=documents, num_codes=4, code_size=8, vocabulary_size=vocabulary, document_length=60
    )
    fields = ("vocabulary", "offsets", "word_indices", "word_counts")
    np.savez(path, **{field: getattr(corpus, field) for field in fields})
    print(
        f"corpus: {documents} documents × {vocabulary} words drawn in {time.perf_counter() - start:.0f} s "
        f"(one chunk of {redge_corpus.GENERATOR_CHUNK_DOCUMENTS} documents at a time): peak {peak_gib():.2f} GiB",
        flush=True,
    )


def run_host(host, path, batch_size):
    import numpy as np

    from redge_core import corpus as redge_corpus

    topic_models = importlib.import_module(f"{host}_redge.topic_models")
    lib = importlib.import_module(f"{host}_redge")
    print(f"[{host}] start: peak {peak_gib():.2f} GiB", flush=True)
    start = time.perf_counter()
    with np.load(path) as archive:
        corpus = redge_corpus.Corpus(**{field: archive[field] for field in archive.files})
    documents, vocabulary = corpus.num_documents, corpus.vocabulary_size
    held_out_size = max(1, documents // 100)
    train = corpus.subset(np.arange(documents - held_out_size))
    held_out = corpus.subset(np.arange(documents - held_out_size, documents))
    del corpus
    stored = sum(getattr(train, field).nbytes for field in ("offsets", "word_indices", "word_counts")) / 2**30
    print(
        f"[{host}] corpus: {train.num_documents} + {held_out.num_documents} documents, {vocabulary} words, "
        f"{train.num_tokens} training tokens ({stored:.2f} GiB of compressed rows), loaded in "
        f"{time.perf_counter() - start:.0f} s: peak {peak_gib():.2f} GiB",
        flush=True,
    )
    model = topic_models.DiscreteCodeTopicModel(vocabulary, 4, 8, lib.ReinMax())
    start = time.perf_counter()
    history = topic_models.fit(model, train, epochs=1, batch_size=batch_size, learning_rate=0.01, progress=False)
    print(
        f"[{host}] one epoch ({-(-train.num_documents // batch_size)} steps of {batch_size} documents): "
        f"{time.perf_counter() - start:.0f} s, loss per token {history['loss_per_token'][-1]:.3f}: "
        f"peak {peak_gib():.2f} GiB",
        flush=True,
    )
    start = time.perf_counter()
    bound = model.held_out_bound_per_token(held_out)
    print(
        f"[{host}] held-out bound per token {bound:.3f} (perplexity {np.exp(-bound):.0f}) in "
        f"{time.perf_counter() - start:.0f} s: peak {peak_gib():.2f} GiB",
        flush=True,
    )
    start = time.perf_counter()
    coherence = redge_corpus.npmi_coherence(model.topics(), train).mean()
    print(
        f"[{host}] NPMI {coherence:.3f} on the training corpus in {time.perf_counter() - start:.0f} s: "
        f"peak {peak_gib():.2f} GiB",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 000 documents × 2 000 words")
    parser.add_argument("--hosts", nargs="+", choices=["pyro", "numpyro"], default=["pyro", "numpyro"])
    parser.add_argument("--documents", type=int, default=None, help="default 10^6 (--quick: 2·10^4)")
    parser.add_argument("--vocabulary", type=int, default=None, help="default 10^4 (--quick: 2 000)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--child", choices=["pyro", "numpyro"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    documents = args.documents or (20_000 if args.quick else 1_000_000)
    vocabulary = args.vocabulary or (2_000 if args.quick else 10_000)
    if args.child:
        run_host(args.child, args.corpus, args.batch_size)
        return
    if args.generate:
        generate(args.generate, documents, vocabulary)
        return
    modules = {"pyro": "torch", "numpyro": "jax"}
    hosts = [host for host in args.hosts if importlib.util.find_spec(modules[host]) is not None]
    for host in sorted(set(args.hosts) - set(hosts)):
        print(f"{modules[host]} is not installed: the {host} run is skipped")
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "corpus.npz"
        # Each stage in a fresh process: a child inherits its parent's peak resident memory.
        sizes = ["--documents", str(documents), "--vocabulary", str(vocabulary)]
        subprocess.run([sys.executable, __file__, "--generate", str(path)] + sizes, check=True)
        for host in hosts:
            command = [sys.executable, __file__, "--child", host, "--corpus", str(path)]
            subprocess.run(command + ["--batch-size", str(args.batch_size)], check=True)
    print("\npeak: the process's peak resident memory so far (ru_maxrss), the interpreter and the host included.")


if __name__ == "__main__":
    main()
