"""The ``redge`` command: ``redge demo`` fits LDA and a discrete-code neural topic model to the
bundled news corpus by SVI in each installed host (our ReinMax against exact enumeration and
against REINFORCE) and prints held-out perplexity, coherence, time and topics side by side;
``redge bench`` runs the benchmarks of a source checkout."""

import argparse
import importlib.util
import pathlib
import runpy
import sys

import numpy as np

# Budgets of `redge demo`: (epochs, steps cap or None) per model; --quick takes a few steps.
DEMO_BUDGETS = {"full": {"lda": (8, None), "codes": (30, None)}, "quick": {"lda": (1, 12), "codes": (1, 25)}}
DEMO_TOPICS = {"full": 20, "quick": 10}


def topic_model_demo(train, held_out, num_topics, budgets, device="cpu", progress=True):
    """Fit LDA (ReinMax vs TraceEnum_ELBO) and the discrete-code model (ReinMax vs
    TraceGraph_ELBO) to ``train`` with Pyro; return one result dict per fit (see
    :func:`summarise_fit`)."""
    import pyro

    from pyro_redge import ReinMax
    from pyro_redge.topic_models import LDA, DiscreteCodeTopicModel, fit

    pyro.enable_validation(False)  # speed: the tests run these models with validation on
    results = []
    for name, make in [
        ("lda", lambda estimator: LDA(train.vocabulary_size, num_topics, estimator, device=device)),
        ("codes", lambda estimator: DiscreteCodeTopicModel(train.vocabulary_size, 4, 8, estimator, device=device)),
    ]:
        for estimator in (ReinMax(), None):
            topic_model = make(estimator)
            epochs, max_steps = budgets[name]
            history = fit(topic_model, train, epochs=epochs, learning_rate=0.01, held_out=held_out, progress=progress, max_steps=max_steps)
            results.append(summarise_fit("Pyro", name, topic_model, history, train))
    return results


def summarise_fit(host_name, model_name, topic_model, history, train):
    """Held-out perplexity, NPMI coherence on the training corpus and wall-clock of one fit."""
    import redge_corpus

    topics = topic_model.topics()
    return {
        "host": host_name,
        "model": model_name,
        "fit": topic_model.label,
        "perplexity": float(np.exp(-history["held_out_bound_per_token"][-1])),
        "coherence": float(redge_corpus.npmi_coherence(topics, train).mean()),
        "seconds_per_epoch": float(np.mean(history["seconds"])),
        "seconds": float(np.sum(history["seconds"])),
        "perplexity_curve": [float(np.exp(-bound)) for bound in history["held_out_bound_per_token"]],
        "top_words": redge_corpus.top_words(topics, train.vocabulary, 8),
    }


def print_topic_results(results, topics_shown=8):
    print("\nheld-out perplexity (lower is better; an ELBO bound with the assignments marginalised")
    print("exactly for LDA, Monte Carlo over the codes), NPMI coherence of the top-10 words on the")
    print("training corpus (higher is better), wall-clock per epoch:")
    print(f"  {'host':8s} {'model fit':28s} {'perplexity':>10s} {'NPMI':>7s} {'s/epoch':>8s}")
    for row in results:
        print(f"  {row['host']:8s} {row['fit']:28s} {row['perplexity']:10.1f} {row['coherence']:7.3f} {row['seconds_per_epoch']:8.2f}")
    for host_name in dict.fromkeys(row["host"] for row in results):
        for model_name in ("lda", "codes"):
            fits = [row for row in results if row["host"] == host_name and row["model"] == model_name]
            best = min(fits, key=lambda row: row["perplexity"] if np.isfinite(row["perplexity"]) else np.inf)
            print(f"\n{host_name} {best['fit']} (the lower held-out perplexity of its model): top words of {topics_shown} topics")
            for k, words in enumerate(best["top_words"][:topics_shown]):
                print(f"  topic {k:2d}: {' '.join(words)}")


def plot_topic_results(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, (name, title) in zip(axes, [("lda", "LDA: ReinMax vs exact enumeration"), ("codes", "discrete codes: ReinMax vs REINFORCE")]):
        for row in results:
            if row["model"] == name:
                curve = row["perplexity_curve"]
                axis.plot(range(1, len(curve) + 1), curve, marker="o", label=f"{row['host']} {row['fit']}")
        axis.set(title=title, xlabel="epoch", ylabel="held-out perplexity")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _run_demo(args):
    import redge_corpus

    mode = "quick" if args.quick else "full"
    train, held_out = redge_corpus.load_news_articles()
    print(f"news corpus: {train.num_documents} training and {held_out.num_documents} held-out articles, {train.vocabulary_size} words, {train.num_tokens} training tokens")
    results = []
    if importlib.util.find_spec("pyro") is not None:
        results += topic_model_demo(train, held_out, DEMO_TOPICS[mode], DEMO_BUDGETS[mode], device=args.device)
    if importlib.util.find_spec("numpyro") is not None:
        from numpyro_redge.cli import topic_model_demo as numpyro_topic_model_demo

        results += numpyro_topic_model_demo(train, held_out, DEMO_TOPICS[mode], DEMO_BUDGETS[mode])
    if not results:
        sys.exit("redge demo needs Pyro or NumPyro: pip install 'pyro-redge[all]'")
    print_topic_results(results)
    if importlib.util.find_spec("matplotlib") is not None:
        plot_topic_results(results, args.plot)
        print(f"\nplot: {args.plot}")


def _run_bench(args):
    folder = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
    if not (folder / "estimator_speed.py").exists():
        sys.exit("redge bench runs the scripts in benchmarks/ of a source checkout (pip install -e .)")
    for name, extra in [("estimator_speed.py", ["--device", args.device]), ("count_scaling.py", []), ("reinforce_race.py", [])]:
        print(f"\n== benchmarks/{name}")
        sys.argv = [str(folder / name)] + (["--quick"] if args.quick else []) + extra
        runpy.run_path(str(folder / name), run_name="__main__")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="redge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("demo", "fit topic models with discrete latents to the bundled news corpus in Pyro and NumPyro"),
        ("bench", "estimator speed and memory vs the reference packages"),
    ]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--quick", action="store_true", help="a short run")
        command.add_argument("--device", default="cpu", help="cpu or cuda (PyTorch side; JAX uses its default device)")
        if name == "demo":
            command.add_argument("--plot", default="redge-demo.png", help="where to write the plot")
    args = parser.parse_args(argv)
    {"demo": _run_demo, "bench": _run_bench}[args.command](args)


if __name__ == "__main__":
    main()
